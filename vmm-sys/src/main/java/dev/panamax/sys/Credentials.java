package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The process's user and group ids, and the one-way switch to an unprivileged user
 * ({@code credentials(7)}, {@code prctl(2)}).
 *
 * <p>Linux keeps credentials per thread. glibc's {@code setgroups}, {@code setresgid} and {@code
 * setresuid} change every thread of the process (nptl's "setxid" broadcast), which a JVM with dozens
 * of threads needs; so they are called through libc here, never as raw system calls. {@code
 * no_new_privs} is per thread as well and glibc does not broadcast it: {@link #forbidNewPrivileges}
 * sets it on the calling thread and has the kernel copy it to every other thread.
 */
public final class Credentials {
    private Credentials() {}

    // <sys/prctl.h>, <sys/syscall.h>, <linux/seccomp.h>, <linux/filter.h>; checked against C by the ABI test.
    static final int PR_SET_NO_NEW_PRIVS = 38;
    static final int PR_GET_NO_NEW_PRIVS = 39;
    static final long SYS_seccomp = 317;
    static final int SECCOMP_SET_MODE_FILTER = 1;
    static final int SECCOMP_FILTER_FLAG_TSYNC = 1;
    static final int SECCOMP_RET_ALLOW = 0x7fff0000;
    static final int BPF_RET = 0x06;
    static final int BPF_K = 0x00;

    /** {@code struct sock_filter}: one classic BPF instruction. */
    static final StructLayout SOCK_FILTER = MemoryLayout.structLayout(JAVA_SHORT.withName("code"), JAVA_BYTE.withName("jt"),
            JAVA_BYTE.withName("jf"), JAVA_INT.withName("k")).withName("sock_filter");
    /** {@code struct sock_fprog}: the number of instructions and where they are. */
    static final StructLayout SOCK_FPROG = MemoryLayout.structLayout(JAVA_SHORT.withName("len"), MemoryLayout.paddingLayout(6),
            ADDRESS.withName("filter")).withName("sock_fprog");
    static final List<StructLayout> STRUCTS = List.of(SOCK_FILTER, SOCK_FPROG);

    // uid_t getuid(void) and the like: they cannot fail.
    private static final MethodHandle GETUID = Libc.downcall("getuid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle GETEUID = Libc.downcall("geteuid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle GETGID = Libc.downcall("getgid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle GETEGID = Libc.downcall("getegid", FunctionDescriptor.of(JAVA_INT));
    // int setgroups(size_t size, const gid_t *list)
    private static final MethodHandle SETGROUPS = Libc.downcall("setgroups", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS), Libc.ERRNO);
    // int setresgid(gid_t rgid, gid_t egid, gid_t sgid); int setresuid(uid_t ruid, uid_t euid, uid_t suid)
    private static final MethodHandle SETRESGID = Libc.downcall("setresgid",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), Libc.ERRNO);
    private static final MethodHandle SETRESUID = Libc.downcall("setresuid",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), Libc.ERRNO);
    // int prctl(int option, ...): the four-argument form
    private static final MethodHandle PRCTL = Libc.downcall("prctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG), Linker.Option.firstVariadicArg(1), Libc.ERRNO);
    // long syscall(long number, ...): glibc has no seccomp() wrapper
    private static final MethodHandle SYSCALL3 = Libc.downcall("syscall",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(1), Libc.ERRNO);

    /** The largest id {@code uid_t} and {@code gid_t} hold; one more, (uid_t) -1, means "unchanged" to the set*id calls. */
    public static final long MAX_ID = 0xfffffffeL;

    public static long realUserId() {
        return id(GETUID);
    }

    public static long effectiveUserId() {
        return id(GETEUID);
    }

    public static long realGroupId() {
        return id(GETGID);
    }

    public static long effectiveGroupId() {
        return id(GETEGID);
    }

    private static long id(MethodHandle getter) {
        try {
            return Integer.toUnsignedLong((int) getter.invokeExact());
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * Makes every thread of the process user {@code uid} and group {@code gid}, real, effective and
     * saved, with no supplementary groups; for good: the kernel clears the capabilities of a process
     * whose user ids all leave 0. Groups first, then the group, then the user: once the user is no
     * longer root, the group could not change any more. Needs CAP_SETUID and CAP_SETGID (root).
     *
     * @throws NativeCallException naming the step that failed; the steps before it stay done
     */
    public static void switchTo(long uid, long gid) {
        checkId(uid, "uid");
        checkId(gid, "gid");
        int u = (int) uid;
        int g = (int) gid;
        Libc.call("setgroups(0)", (arena, state) -> (int) SETGROUPS.invokeExact(state, 0L, MemorySegment.NULL));
        Libc.call("setresgid(" + gid + ")", (arena, state) -> (int) SETRESGID.invokeExact(state, g, g, g));
        Libc.call("setresuid(" + uid + ")", (arena, state) -> (int) SETRESUID.invokeExact(state, u, u, u));
    }

    private static void checkId(long id, String what) {
        if (id < 0 || id > MAX_ID) {
            throw new IllegalArgumentException(what + " " + id + " is out of range: 0 to " + MAX_ID);
        }
    }

    /**
     * Sets {@code no_new_privs} on every thread of the process: no {@code execve} of it or of its
     * children gains privileges again (set-user-ID files, file capabilities). {@code
     * prctl(PR_SET_NO_NEW_PRIVS)} sets it on the calling thread only; a child a thread forks inherits
     * that thread's flag, and the JVM spawns processes from whichever thread asks. So an allow-all
     * seccomp filter follows, installed with SECCOMP_FILTER_FLAG_TSYNC, with which the kernel gives
     * every thread the filter and the caller's {@code no_new_privs} at once (seccomp_sync_threads).
     * The filter allows every system call; it costs nothing measurable (the kernel caches its constant
     * verdict per system call, 5.11 and later). Threads created afterwards inherit both.
     *
     * @throws NativeCallException when the kernel refuses either step (for TSYNC, when a thread has
     *     a seccomp filter of its own that this one cannot join)
     */
    public static void forbidNewPrivileges() {
        Libc.call("prctl(PR_SET_NO_NEW_PRIVS)", (arena, state) -> (int) PRCTL.invokeExact(state, PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L));
        long result = Libc.call("seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC)", (arena, state) -> {
            MemorySegment allow = arena.allocate(SOCK_FILTER);
            allow.set(JAVA_SHORT, SOCK_FILTER.byteOffset(MemoryLayout.PathElement.groupElement("code")), (short) (BPF_RET | BPF_K));
            allow.set(JAVA_INT, SOCK_FILTER.byteOffset(MemoryLayout.PathElement.groupElement("k")), SECCOMP_RET_ALLOW);
            MemorySegment program = arena.allocate(SOCK_FPROG);
            program.set(JAVA_SHORT, SOCK_FPROG.byteOffset(MemoryLayout.PathElement.groupElement("len")), (short) 1);
            program.set(ADDRESS, SOCK_FPROG.byteOffset(MemoryLayout.PathElement.groupElement("filter")), allow);
            return (long) SYSCALL3.invokeExact(state, SYS_seccomp, (long) SECCOMP_SET_MODE_FILTER, (long) SECCOMP_FILTER_FLAG_TSYNC, program);
        });
        if (result != 0) { // TSYNC's other failure: the id of a thread that could not be synchronized
            throw new NativeCallException("seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC) for thread " + result, Libc.EPERM,
                    "that thread has a seccomp filter of its own");
        }
    }

    /** Whether the calling thread has {@code no_new_privs} ({@code prctl(PR_GET_NO_NEW_PRIVS)}). */
    public static boolean newPrivilegesForbidden() {
        return Libc.call("prctl(PR_GET_NO_NEW_PRIVS)", (arena, state) -> (int) PRCTL.invokeExact(state, PR_GET_NO_NEW_PRIVS, 0L, 0L, 0L, 0L)) == 1;
    }

    /**
     * One thread's credentials as {@code /proc/self/task/TID/status} shows them.
     *
     * @param uids real, effective, saved and file-system user id
     * @param gids the same for the group
     * @param groups the supplementary groups
     * @param capabilitiesEffective the {@code CapEff} bits
     * @param capabilitiesPermitted the {@code CapPrm} bits
     */
    public record ThreadCredentials(int tid, String name, List<Long> uids, List<Long> gids, List<Long> groups, boolean noNewPrivs,
            long capabilitiesEffective, long capabilitiesPermitted) {
        public ThreadCredentials {
            uids = List.copyOf(uids);
            gids = List.copyOf(gids);
            groups = List.copyOf(groups);
        }

        /** Whether all four user ids are {@code uid} and all four group ids {@code gid}. */
        public boolean isOnly(long uid, long gid) {
            return uids.stream().allMatch(u -> u == uid) && gids.stream().allMatch(g -> g == gid);
        }

        @Override
        public String toString() {
            return "thread " + tid + " (" + name + "): uids " + uids + ", gids " + gids + ", groups " + groups + ", no_new_privs "
                    + (noNewPrivs ? 1 : 0) + ", CapEff " + Long.toHexString(capabilitiesEffective) + ", CapPrm "
                    + Long.toHexString(capabilitiesPermitted);
        }
    }

    /** Every thread of this process, as {@code /proc/self/task} lists them now (a thread that ends meanwhile is left out). */
    public static List<ThreadCredentials> threads() {
        List<ThreadCredentials> threads = new ArrayList<>();
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path task : tasks) {
                try {
                    threads.add(parseStatus(Integer.parseInt(task.getFileName().toString()), Files.readAllLines(task.resolve("status"))));
                } catch (NoSuchFileException e) {
                    // the thread ended after the listing
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read /proc/self/task: " + e.getMessage(), e);
        }
        return threads;
    }

    /** The credentials in the lines of a {@code /proc/PID/task/TID/status}. */
    static ThreadCredentials parseStatus(int tid, List<String> lines) {
        String name = "";
        List<Long> uids = null;
        List<Long> gids = null;
        List<Long> groups = null;
        Boolean noNewPrivs = null;
        Long capEff = null;
        Long capPrm = null;
        for (String line : lines) {
            int colon = line.indexOf(':');
            if (colon < 0) {
                continue;
            }
            String value = line.substring(colon + 1).strip();
            switch (line.substring(0, colon)) {
                case "Name" -> name = value;
                case "Uid" -> uids = numbers(value);
                case "Gid" -> gids = numbers(value);
                case "Groups" -> groups = numbers(value);
                case "NoNewPrivs" -> noNewPrivs = value.equals("1");
                case "CapEff" -> capEff = Long.parseUnsignedLong(value, 16);
                case "CapPrm" -> capPrm = Long.parseUnsignedLong(value, 16);
                default -> { }
            }
        }
        if (uids == null || uids.size() != 4 || gids == null || gids.size() != 4 || groups == null || noNewPrivs == null
                || capEff == null || capPrm == null) {
            throw new IllegalStateException("/proc/self/task/" + tid + "/status lacks Uid, Gid, Groups, NoNewPrivs (Linux 4.10),"
                    + " CapEff or CapPrm");
        }
        return new ThreadCredentials(tid, name, uids, gids, groups, noNewPrivs, capEff, capPrm);
    }

    private static List<Long> numbers(String text) {
        List<Long> numbers = new ArrayList<>();
        for (String n : text.split("\\s+")) {
            if (!n.isEmpty()) {
                numbers.add(Long.parseLong(n));
            }
        }
        return numbers;
    }
}
