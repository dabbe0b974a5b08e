package dev.panamax.sys;

import static dev.panamax.sys.SeccompAbi.SECCOMP_NOTIF;
import static dev.panamax.sys.SeccompAbi.SECCOMP_NOTIF_RESP;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.function.Consumer;

/**
 * Per-thread seccomp filters: a VMM thread (a vCPU, a device's I/O thread) {@linkplain
 * #confineCurrentThread confines itself} to the system calls of its {@link SyscallProfile}, and the
 * rest of the JVM is unaffected.
 *
 * <p>How, and why so:
 * <ul>
 * <li>Each thread installs its own filter, after {@code prctl(PR_SET_NO_NEW_PRIVS)} and without
 *     {@code SECCOMP_FILTER_FLAG_TSYNC}: only that thread (and threads it would create) is filtered,
 *     as in Firecracker.
 * <li>A forbidden call is not killed ({@code SECCOMP_RET_KILL_*} would take the whole JVM) nor
 *     trapped ({@code SECCOMP_RET_TRAP}'s SIGSYS has no handler in HotSpot, and the process would
 *     dump core). The filter returns {@code SECCOMP_RET_USER_NOTIF} and is installed with {@code
 *     SECCOMP_FILTER_FLAG_NEW_LISTENER} (Linux 5.0): the call waits in the kernel while one
 *     unfiltered supervisor thread ({@code seccomp-supervisor}) reads it from the filter's listener
 *     fd, answers it with EPERM, logs {@code seccomp: thread vcpu-0 called the forbidden system call
 *     socket} and tells the thread's owner, which fails the VM. Answering comes before telling, so an
 *     owner's handler can take locks the stopped thread holds.
 * <li>A thread never waits for ever: when the supervisor ends (an unexpected error), it closes the
 *     listener fds, and the kernel fails every waiting and later forbidden call with ENOSYS.
 * <li>A filtered thread must not start threads itself: a new thread inherits its creator's filter
 *     (and could not add its own listener to that chain), and {@code clone} is no call a device
 *     needs. {@link #start} hands the start to the supervisor thread when the caller is filtered (a
 *     vCPU writing DRIVER_OK starts a device's I/O threads).
 * </ul>
 *
 * <p>To find what a new kind of thread calls, run with {@code -Dpanamax.seccomp.audit=true}: each
 * forbidden call is then logged once per profile and let through ({@code
 * SECCOMP_USER_NOTIF_FLAG_CONTINUE}), and nothing fails.
 */
public final class Seccomp {
    private Seccomp() {}

    private static final System.Logger LOG = System.getLogger(Seccomp.class.getName());
    private static final boolean AUDIT = Boolean.getBoolean("panamax.seccomp.audit");
    private static final int IOCTL = Syscalls.number("ioctl");

    /**
     * A system call a thread's filter forbade.
     *
     * @param threadName the thread's name (Java's, or the kernel's {@code comm} for a thread the
     *                   supervisor did not know)
     * @param threadId its Linux thread id
     * @param profile the profile of the filter that stopped it
     * @param syscall the call's name, as {@link Syscalls#name} gives it; {@code x32 read} for an x32
     *                call, {@code 3 (arch 0x40000003)} for another architecture's
     * @param number its number; with {@code arch} not x86_64's, a number of that architecture
     * @param x86_64 whether it came through the x86_64 entry (not {@code int 0x80}, not x32)
     */
    public record Violation(String threadName, int threadId, SyscallProfile profile, String syscall, int number, boolean x86_64) {
        /** The sentence the log and the VM's failure give. */
        public String message() {
            return "thread " + threadName + " called the forbidden system call " + syscall;
        }
    }

    /** The profile of the calling thread's filter, null while it has none. */
    private static final ThreadLocal<SyscallProfile> CONFINED = new ThreadLocal<>();
    private static Supervisor supervisor; // guarded by Seccomp.class

    /**
     * Installs on the calling thread, for the rest of its life, a filter that allows only {@code
     * profile}'s system calls, {@code ioctl} only with one of {@code ioctlRequests}. Each forbidden
     * call fails with EPERM and is reported to {@code onViolation}, on the supervisor thread, after
     * it was logged.
     *
     * @throws IllegalStateException when the thread already has a filter
     * @throws NativeCallException when the kernel refuses (a kernel before 5.0, a seccomp that is off)
     */
    public static void confineCurrentThread(SyscallProfile profile, Set<Long> ioctlRequests, Consumer<Violation> onViolation) {
        confineCurrentThread(profile, profile.filter(ioctlRequests), SeccompAbi.AUDIT_ARCH_X86_64, onViolation);
    }

    /** Installs {@code filter}'s program for {@code arch} (x86_64's but in the test that sees the check work). */
    static void confineCurrentThread(SyscallProfile profile, SeccompFilter filter, int arch, Consumer<Violation> onViolation) {
        Objects.requireNonNull(onViolation, "onViolation");
        if (CONFINED.get() != null) {
            throw new IllegalStateException("thread " + Thread.currentThread().getName() + " already has a seccomp filter ("
                    + CONFINED.get() + ")");
        }
        Supervisor watcher = supervisor(); // started now, while this thread may still create threads
        String name = Thread.currentThread().getName();
        // Made before the filter is in place, as is all this method uses after it: a class loaded
        // then would be read from its jar by a thread whose forbidden calls nobody answers yet.
        Registration registration = new Registration(name, Libc.gettid(), profile, onViolation);
        Fd.class.getName();
        Libc.linkAll();
        int listener;
        try (Arena arena = Arena.ofConfined()) {
            List<BpfAssembler.Instruction> program = filter.program(arch);
            MemorySegment code = arena.allocate(SeccompAbi.SOCK_FILTER, program.size());
            for (int i = 0; i < program.size(); i++) {
                BpfAssembler.Instruction in = program.get(i);
                long at = i * SeccompAbi.SOCK_FILTER.byteSize();
                code.set(JAVA_SHORT, at, (short) in.code());
                code.set(JAVA_BYTE, at + 2, (byte) in.jt());
                code.set(JAVA_BYTE, at + 3, (byte) in.jf());
                code.set(JAVA_INT, at + 4, in.k());
            }
            MemorySegment fprog = arena.allocate(SeccompAbi.SOCK_FPROG);
            fprog.set(JAVA_SHORT, 0, (short) program.size());
            fprog.set(JAVA_LONG, 8, code.address());
            // Without no_new_privs an unprivileged thread may not install a filter; it only keeps
            // this thread from gaining privileges through execve, which no VMM thread does.
            Libc.prctl("PR_SET_NO_NEW_PRIVS", SeccompAbi.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            long result = Libc.syscall(SeccompAbi.__NR_seccomp, SeccompAbi.SECCOMP_SET_MODE_FILTER,
                    SeccompAbi.SECCOMP_FILTER_FLAG_NEW_LISTENER, fprog.address(), 0, 0, 0);
            if (result < 0) {
                throw new NativeCallException("seccomp(SECCOMP_SET_MODE_FILTER, " + profile + ")", (int) -result);
            }
            listener = (int) result;
        }
        CONFINED.set(profile);
        // From here until the supervisor watches the listener, a forbidden call would wait: this
        // thread makes none (a queue offer and an eventfd write).
        registration.listener = new Fd(listener, "seccomp listener");
        watcher.submit(registration);
    }

    /** The profile of the calling thread's filter, or null when it has none. */
    public static SyscallProfile currentProfile() {
        return CONFINED.get();
    }

    /**
     * Starts {@code thread}: itself when the calling thread has no filter, else through the
     * supervisor thread, so that the new thread does not inherit the caller's filter. Returns once
     * it started.
     *
     * @throws IllegalStateException when the supervisor has ended, or {@link Thread#start} failed
     */
    public static void start(Thread thread) {
        if (CONFINED.get() == null) {
            thread.start();
            return;
        }
        Supervisor watcher;
        synchronized (Seccomp.class) {
            watcher = supervisor;
        }
        if (watcher == null) {
            throw new IllegalStateException("the seccomp supervisor has ended; a filtered thread cannot start " + thread.getName());
        }
        StartRequest request = new StartRequest(thread);
        watcher.submit(request);
        request.await();
    }

    /**
     * Makes system call {@code name} with all-zero arguments from the calling thread and returns its
     * result or the negated errno: for tests that check that a filter stops a call. Use it only with
     * calls that do nothing harmful with zero arguments ({@code socket}, {@code getppid}).
     */
    public static long probe(String name) {
        return Libc.syscall(Syscalls.number(name), 0, 0, 0, 0, 0, 0);
    }

    /** {@link #probe} with a raw number, as a call through the x32 ABI would be. */
    static long probe(int number) {
        return Libc.syscall(number, 0, 0, 0, 0, 0, 0);
    }

    private static synchronized Supervisor supervisor() {
        if (supervisor == null || !supervisor.alive) {
            supervisor = new Supervisor();
            supervisor.thread.start();
        }
        return supervisor;
    }

    /** A filtered thread, as the supervisor knows it. */
    private static final class Registration {
        final String threadName;
        final int threadId;
        final SyscallProfile profile;
        final Consumer<Violation> onViolation;
        Fd listener; // set before it is submitted

        Registration(String threadName, int threadId, SyscallProfile profile, Consumer<Violation> onViolation) {
            this.threadName = threadName;
            this.threadId = threadId;
            this.profile = profile;
            this.onViolation = onViolation;
        }

        Fd listener() {
            return listener;
        }

        String threadName() {
            return threadName;
        }

        int threadId() {
            return threadId;
        }

        SyscallProfile profile() {
            return profile;
        }

        Consumer<Violation> onViolation() {
            return onViolation;
        }
    }

    private static final class StartRequest {
        final Thread thread;
        final CountDownLatch done = new CountDownLatch(1);
        volatile Throwable failure;

        StartRequest(Thread thread) {
            this.thread = thread;
        }

        void await() {
            boolean interrupted = false;
            while (true) {
                try {
                    done.await();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true; // the start is under way: wait for it
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            if (failure != null) {
                throw new IllegalStateException("could not start thread " + thread.getName() + ": " + failure, failure);
            }
        }
    }

    /** The unfiltered thread that answers forbidden calls and starts threads for filtered ones. */
    private static final class Supervisor implements Runnable {
        private static final int WAKE = 0;

        final Thread thread = Thread.ofPlatform().daemon().name("seccomp-supervisor").unstarted(this);
        volatile boolean alive = true;
        private final Poller poller = Poller.create(16);
        private final EventFd wake = EventFd.create(true);
        private final ConcurrentLinkedQueue<Object> requests = new ConcurrentLinkedQueue<>();
        private final Map<Integer, Registration> watched = new HashMap<>(); // by poller token; supervisor thread only
        private final Set<String> audited = ConcurrentHashMap.newKeySet();
        private int nextToken = WAKE + 1;

        Supervisor() {
            poller.add(wake, Poller.READABLE, WAKE);
        }

        void submit(Object request) {
            synchronized (Seccomp.class) { // end() drains the queue after alive turns false under this lock
                if (alive) {
                    requests.add(request);
                    wake.signal();
                    return;
                }
            }
            refuse(request);
        }

        private static void refuse(Object request) {
            if (request instanceof Registration r) {
                r.listener().close(); // the kernel fails the filtered thread's forbidden calls from now on
            } else if (request instanceof StartRequest s) {
                s.failure = new IllegalStateException("the seccomp supervisor has ended");
                s.done.countDown();
            }
        }

        @Override
        public void run() {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment notif = arena.allocate(SECCOMP_NOTIF);
                MemorySegment resp = arena.allocate(SECCOMP_NOTIF_RESP);
                MemorySegment state = Libc.allocateCallState(arena);
                while (true) {
                    int ready = poller.await(-1);
                    for (int i = 0; i < ready; i++) {
                        int token = poller.token(i);
                        if (token == WAKE) {
                            wake.read();
                            takeRequests();
                        } else if ((poller.events(i) & Poller.READABLE) != 0) {
                            answer(watched.get(token), notif, resp, state);
                        } else if ((poller.events(i) & Poller.HANGUP) != 0) {
                            // Every thread under this filter has ended.
                            Registration gone = watched.remove(token);
                            poller.remove(gone.listener());
                            gone.listener().close();
                        }
                    }
                }
            } catch (Throwable t) {
                LOG.log(Level.ERROR, "the seccomp supervisor failed; filtered threads' forbidden calls now fail with ENOSYS", t);
            } finally {
                end();
            }
        }

        private void takeRequests() {
            Object request;
            while ((request = requests.poll()) != null) {
                if (request instanceof Registration r) {
                    int token = nextToken++;
                    watched.put(token, r);
                    poller.add(r.listener(), Poller.READABLE, token);
                } else if (request instanceof StartRequest s) {
                    try {
                        s.thread.start();
                    } catch (Throwable t) {
                        s.failure = t;
                    }
                    s.done.countDown();
                }
            }
        }

        private void answer(Registration r, MemorySegment notif, MemorySegment resp, MemorySegment state) {
            notif.fill((byte) 0); // the kernel refuses a buffer that is not zeroed
            if (Libc.ioctlRaw(state, r.listener().fd(), SeccompAbi.SECCOMP_IOCTL_NOTIF_RECV, notif) < 0) {
                int errno = Libc.errno(state);
                if (errno == Libc.ENOENT || errno == Libc.EINTR) {
                    return; // the call was interrupted (a signal) before we took it
                }
                throw new NativeCallException("ioctl(SECCOMP_IOCTL_NOTIF_RECV)", errno);
            }
            long id = notif.get(JAVA_LONG, 0);
            int tid = notif.get(JAVA_INT, 8);
            int nr = notif.get(JAVA_INT, SeccompAbi.NOTIF_DATA + SeccompAbi.DATA_NR);
            int arch = notif.get(JAVA_INT, SeccompAbi.NOTIF_DATA + SeccompAbi.DATA_ARCH);
            resp.fill((byte) 0);
            resp.set(JAVA_LONG, 0, id);
            if (AUDIT) {
                resp.set(JAVA_INT, 20, SeccompAbi.SECCOMP_USER_NOTIF_FLAG_CONTINUE);
            } else {
                resp.set(JAVA_INT, 16, -Libc.EPERM);
            }
            // ENOENT: the thread was interrupted or has gone meanwhile; it has its answer either way.
            if (Libc.ioctlRaw(state, r.listener().fd(), SeccompAbi.SECCOMP_IOCTL_NOTIF_SEND, resp) < 0 && Libc.errno(state) != Libc.ENOENT) {
                throw new NativeCallException("ioctl(SECCOMP_IOCTL_NOTIF_SEND)", Libc.errno(state));
            }
            boolean x86_64 = arch == SeccompAbi.AUDIT_ARCH_X86_64 && (nr & SeccompAbi.__X32_SYSCALL_BIT) == 0;
            String name = x86_64 ? Syscalls.name(nr) : (arch == SeccompAbi.AUDIT_ARCH_X86_64 ? "x32 " + Syscalls.name(nr & ~SeccompAbi.__X32_SYSCALL_BIT)
                    : String.format("%d (arch 0x%x)", nr, arch));
            if (x86_64 && nr == IOCTL) {
                name += String.format(" (request 0x%x)", notif.get(JAVA_INT, SeccompAbi.NOTIF_DATA + SeccompAbi.DATA_ARGS + 8));
            }
            Violation v = new Violation(tid == r.threadId() ? r.threadName() : threadName(tid), tid, r.profile(), name, nr, x86_64);
            if (AUDIT) {
                if (audited.add(r.profile() + " " + name)) {
                    LOG.log(Level.WARNING, "seccomp audit: " + v.message() + " (profile " + r.profile() + "); let through");
                }
                return;
            }
            LOG.log(Level.ERROR, "seccomp: " + v.message());
            try {
                r.onViolation().accept(v);
            } catch (RuntimeException e) {
                LOG.log(Level.ERROR, "seccomp: reporting the forbidden call of thread " + v.threadName() + " failed", e);
            }
        }

        private static String threadName(int tid) {
            try {
                return Files.readString(Path.of("/proc/self/task/" + tid + "/comm")).strip() + " (tid " + tid + ")";
            } catch (IOException e) {
                return "tid " + tid;
            }
        }

        private void end() {
            synchronized (Seccomp.class) {
                alive = false;
                if (supervisor == this) {
                    supervisor = null;
                }
            }
            for (Registration r : watched.values()) {
                r.listener().close(); // the kernel fails the filtered threads' forbidden calls from now on
            }
            Object request;
            while ((request = requests.poll()) != null) {
                refuse(request);
            }
            poller.close();
            wake.close();
        }
    }
}
