package dev.panamax.sys;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * What each kind of VMM thread may call: the calls every JVM thread makes ({@link #JVM}) and those
 * of its own work, through the wrappers of this package or the JDK. The README's "Seccomp" section
 * lists them for users; keep the two together.
 */
public enum SyscallProfile {
    /** A vCPU: KVM_RUN and the other vCPU ioctls, eventfd signals to devices, a kick of the other vCPUs. */
    VCPU("ioctl", "tgkill", "rt_sigtimedwait"),
    /**
     * A virtio-blk queue: positioned reads and writes of the image, one by one or a batch at a time
     * through an {@link IoUring} restricted to that file, flushes, discards, its rate limiter's
     * wait, and {@code ioctl}, as every device queue: its interrupt's MSI route is
     * programmed (KVM_SET_GSI_ROUTING on the VM's fd) when the queue first signals a vector the
     * guest has (re)written, and legacy lines go through KVM_IRQ_LINE.
     */
    BLOCK("ioctl", "pread64", "pwrite64", "preadv", "pwritev", "io_uring_enter", "lseek", "fsync", "fdatasync", "fallocate", "ftruncate",
            "epoll_create1", "epoll_ctl", "epoll_wait"),
    /** A virtio-net queue: the tap device's or passt socket's reads and writes, waits on either and the queue's eventfd. */
    NET("readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "epoll_create1", "epoll_ctl", "epoll_wait", "ioctl"),
    /** virtio-rng's queue: the host's random bytes, and its rate limiter's wait. */
    RNG("ioctl", "getrandom", "epoll_create1", "epoll_ctl", "epoll_wait"),
    /** virtio-balloon's queues: giving guest pages back to the host (madvise, in {@link #JVM}), the statistics interval's wait. */
    BALLOON("ioctl", "epoll_create1", "epoll_ctl", "epoll_wait"),
    /** virtio-vsock's queues and its host thread: Unix sockets to and from the host's programs, and their waits. */
    VSOCK("ioctl", "socket", "connect", "accept", "recvfrom", "sendto", "shutdown", "fcntl", "epoll_create1", "epoll_ctl",
            "epoll_wait", "getsockname", "getsockopt"),
    /**
     * virtio-fs's queues: the file server's calls, each relative to a directory fd it holds, and the hiprio
     * queue's timed wait between batches of FORGETs.
     */
    FS("ioctl", "epoll_create1", "epoll_ctl", "epoll_wait", "openat", "newfstatat", "fstat", "statx", "getdents64", "mkdirat", "mknodat", "unlinkat", "renameat", "renameat2", "linkat",
            "symlinkat", "readlinkat", "fchmodat", "fchmod", "fchownat", "utimensat", "ftruncate", "fsync", "fdatasync",
            "fallocate", "lseek", "pread64", "pwrite64", "preadv", "pwritev", "fstatfs", "getxattr", "setxattr",
            "listxattr", "removexattr", "lgetxattr", "lsetxattr", "llistxattr", "lremovexattr", "fcntl");

    /**
     * Every JVM thread's calls: locks and waits (futex, sched_yield, nanosleep), memory (TLABs,
     * metaspace, malloc), time, signals (HotSpot's safepoint and thread-exit paths, and the wait of a
     * thread a profiler such as Java Flight Recorder suspended to sample it), the logger's
     * and eventfds' read and write, close, and thread exit; and reading files, which the JVM does
     * when a thread first uses a class (from a jar or a classes directory): {@code openat} only
     * read-only (see {@link #READ_ONLY_OPEN}); and the id changes glibc has every thread make when
     * the process switches users.
     */
    static final List<String> JVM = List.of("read", "write", "close", "futex", "sched_yield", "nanosleep", "clock_nanosleep",
            "clock_gettime", "gettimeofday", "getpid", "gettid", "mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
            "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "sigaltstack", "restart_syscall", "sched_getaffinity", "getrusage",
            "exit", "fstat", "stat", "lstat", "readlink", "newfstatat", "lseek", "pread64",
            // glibc changes a process's ids on every thread (run --uid/--gid): each thread makes the call itself in a
            // signal handler, and glibc aborts the process if one fails. Root gains nothing by them; a user cannot.
            "setresuid", "setresgid", "setgroups");

    /** The flags {@code openat} may not have outside {@link #FS}: write access, creating, truncating, appending. */
    static final int OPEN_WRITE_FLAGS = 0x3 /* O_ACCMODE */ | 0x40 /* O_CREAT */ | 0x200 /* O_TRUNC */ | 0x400 /* O_APPEND */;
    /** openat(dirfd, path, flags, mode) allowed only read-only: flags is argument 2. */
    static final SeccompFilter.ArgumentCondition READ_ONLY_OPEN =
            new SeccompFilter.ArgumentCondition(Syscalls.number("openat"), 2, OPEN_WRITE_FLAGS);

    private final List<String> own;

    SyscallProfile(String... own) {
        this.own = List.of(own);
    }

    /** The system calls a thread of this kind may make, by name, sorted. */
    public Set<String> syscalls() {
        return new TreeSet<>(Stream.concat(JVM.stream(), own.stream()).toList());
    }

    /**
     * The filter: this profile's calls, {@code openat} read-only unless the profile lists it, and
     * {@code ioctl} only with one of {@code ioctlRequests} (the caller's: the KVM and device requests
     * this kind of thread makes are known where those are defined).
     */
    SeccompFilter filter(Set<Long> ioctlRequests) {
        int ioctl = Syscalls.number("ioctl");
        List<Integer> numbers = new ArrayList<>();
        syscalls().forEach(name -> numbers.add(Syscalls.number(name)));
        List<SeccompFilter.ArgumentValues> listed = List.of();
        if (numbers.remove((Integer) ioctl)) {
            Set<Integer> requests = new TreeSet<>();
            for (long request : ioctlRequests) {
                if (request >>> 32 != 0) {
                    throw new IllegalArgumentException(String.format("ioctl request 0x%x is wider than the kernel's 32 bits", request));
                }
                requests.add((int) request);
            }
            listed = List.of(new SeccompFilter.ArgumentValues(ioctl, 1, requests));
        }
        return new SeccompFilter(Set.copyOf(numbers), List.of(READ_ONLY_OPEN), listed);
    }
}
