package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.util.Optional;

/**
 * The libc functions Panamax calls, one {@code static final} downcall handle each (as the JDK's
 * {@code UnixNativeDispatcher}). Calls that report failure through errno capture it ({@link
 * Linker.Option#captureCallState}) so that it cannot be clobbered by the JVM between the call and
 * the check. A one-off call goes through {@link #call}, the one place where a negative result and
 * its errno become a {@link NativeCallException}; data-path calls (the {@code *Raw} forms) take a
 * caller-owned errno buffer, allocate nothing, and leave the errno to the typed wrapper, which
 * throws a {@link NativeIoException}.
 *
 * <p>Public only for the KVM bindings ({@code dev.panamax.kvm}); an architecture test keeps every
 * other package to the typed wrappers ({@link Fd}, {@link MappedMemory}, {@link EventFd}, {@link
 * Poller}, {@link SparseFile}, {@link Tap}, {@link UnixStream}, {@link PathHandle}, {@link OpenFile}).
 */
public final class Libc {
    private Libc() {}

    // errno values (asm-generic/errno-base.h, errno.h); checked against C by the ABI test.
    public static final int EPERM = 1;
    public static final int ENOENT = 2;
    public static final int EINTR = 4;
    public static final int EIO = 5;
    public static final int EBADF = 9;
    public static final int EAGAIN = 11;
    public static final int ENOMEM = 12;
    public static final int EACCES = 13;
    public static final int EBUSY = 16;
    public static final int ENODEV = 19;
    public static final int EINVAL = 22;
    public static final int E2BIG = 7;
    public static final int ENXIO = 6;
    public static final int EBADFD = 77;
    public static final int EOPNOTSUPP = 95;
    public static final int ENOSYS = 38;
    public static final int ECONNREFUSED = 111;

    public static final int O_RDONLY = 0;
    public static final int O_RDWR = 2;
    public static final int SEEK_END = 2;
    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;
    public static final int FALLOC_FL_KEEP_SIZE = 1;
    public static final int FALLOC_FL_PUNCH_HOLE = 2;
    public static final int F_OFD_SETLK = 37;
    public static final int F_RDLCK = 0;
    public static final int F_WRLCK = 1;
    public static final int F_UNLCK = 2;
    public static final int O_CLOEXEC = 0x80000;
    public static final int O_NONBLOCK = 0x800;
    public static final int F_GETFL = 3;
    public static final int F_SETFL = 4;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_SHARED = 1;
    public static final int MAP_PRIVATE = 2;
    public static final int MADV_DONTNEED = 4;
    public static final int MADV_REMOVE = 9;
    public static final int MADV_HUGEPAGE = 14;
    public static final int MAP_ANONYMOUS = 0x20;
    public static final int MAP_NORESERVE = 0x4000;
    public static final int MAP_POPULATE = 0x8000;
    public static final int MAP_HUGETLB = 0x40000;
    /** A MAP_HUGETLB mapping's page size is log2(size) shifted by this (MAP_HUGE_2MB, MAP_HUGE_1GB). */
    public static final int MAP_HUGE_SHIFT = 26;
    public static final int MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT;
    public static final int MAP_HUGE_1GB = 30 << MAP_HUGE_SHIFT;
    public static final int EFD_CLOEXEC = 0x80000;
    public static final int EFD_NONBLOCK = 0x800;
    public static final int MFD_CLOEXEC = 1;
    public static final int SIG_BLOCK = 0;
    /** glibc's sigset_t is 1024 bits; the kernel's (as KVM_SET_SIGNAL_MASK takes it) is 64. */
    public static final int SIGSET_BYTES = 128;

    public static final int KERNEL_SIGSET_BYTES = 8;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LOOKUP = LINKER.defaultLookup();
    static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");
    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle CALL_STATE_ERRNO = CALL_STATE.varHandle(PathElement.groupElement("errno"));

    static MethodHandle downcall(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        return LINKER.downcallHandle(LOOKUP.findOrThrow(name), descriptor, options);
    }

    static Optional<MemorySegment> lookup(String name) {
        return LOOKUP.find(name);
    }

    /**
     * Links every C function this class calls, which it otherwise does at each one's first use: for
     * a thread about to install a seccomp filter that would forbid what linking does.
     */
    static void linkAll() {
        Downcall.linkAll();
    }

    // int ioctl(int fd, unsigned long request, ...): linked once per argument shape. Requests that
    // take no argument still get 0, because KVM rejects some (KVM_GET_API_VERSION) when it is not.
    private static final Downcall IOCTL_LONG = new Downcall("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), Linker.Option.firstVariadicArg(2), ERRNO);
    private static final Downcall IOCTL_PTR = new Downcall("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(2), ERRNO);
    // int open(const char *path, int flags, ...)
    private static final Downcall OPEN = new Downcall("open",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2), ERRNO);
    private static final Downcall CLOSE = new Downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT), ERRNO);
    // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
    private static final Downcall MMAP = new Downcall("mmap",
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG), ERRNO);
    private static final Downcall MUNMAP = new Downcall("munmap", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), ERRNO);
    // int madvise(void *addr, size_t length, int advice)
    private static final Downcall MADVISE = new Downcall("madvise", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT), ERRNO);
    // int eventfd(unsigned int initval, int flags)
    private static final Downcall EVENTFD = new Downcall("eventfd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), ERRNO);
    // int memfd_create(const char *name, unsigned int flags)
    private static final Downcall MEMFD_CREATE = new Downcall("memfd_create",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), ERRNO);
    private static final Downcall FTRUNCATE = new Downcall("ftruncate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG), ERRNO);
    // off_t lseek(int fd, off_t offset, int whence)
    private static final Downcall LSEEK = new Downcall("lseek", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT), ERRNO);
    /** struct flock (x86-64), for fcntl's record locks; checked against C by the ABI test. */
    public static final StructLayout FLOCK = MemoryLayout.structLayout(
            JAVA_SHORT.withName("l_type"), JAVA_SHORT.withName("l_whence"), MemoryLayout.paddingLayout(4),
            JAVA_LONG.withName("l_start"), JAVA_LONG.withName("l_len"), JAVA_INT.withName("l_pid"),
            MemoryLayout.paddingLayout(4)).withName("flock");
    // int fcntl(int fd, int cmd, ...): only the pointer-argument shape is needed.
    private static final Downcall FCNTL_PTR = new Downcall("fcntl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS), Linker.Option.firstVariadicArg(2), ERRNO);
    // int fallocate(int fd, int mode, off_t offset, off_t len)
    private static final Downcall FALLOCATE = new Downcall("fallocate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), ERRNO);
    // ssize_t read(int fd, void *buf, size_t count) / write(...)
    private static final Downcall READ = new Downcall("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), ERRNO);
    private static final Downcall WRITE = new Downcall("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), ERRNO);
    /** struct iovec, for preadv/pwritev; checked against C by the ABI test. */
    public static final StructLayout IOVEC = MemoryLayout.structLayout(ADDRESS.withName("iov_base"), JAVA_LONG.withName("iov_len")).withName("iovec");
    /** The most buffers one preadv/pwritev takes (IOV_MAX). */
    public static final int IOV_MAX = 1024;
    // ssize_t preadv(int fd, const struct iovec *iov, int iovcnt, off_t offset) / pwritev(...)
    private static final Downcall PREADV = new Downcall("preadv", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG), ERRNO);
    private static final Downcall PWRITEV = new Downcall("pwritev", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG), ERRNO);
    // ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
    private static final Downcall WRITEV = new Downcall("writev", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT), ERRNO);
    static final long IOV_BASE = IOVEC.byteOffset(PathElement.groupElement("iov_base"));
    static final long IOV_LEN = IOVEC.byteOffset(PathElement.groupElement("iov_len"));
    // int fcntl(int fd, int cmd, ...): only the int-argument commands (F_GETFL, F_SETFL).
    private static final Downcall FCNTL = new Downcall("fcntl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2), ERRNO);
    // int epoll_create1(int flags); int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
    // int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
    private static final Downcall EPOLL_CREATE1 = new Downcall("epoll_create1", FunctionDescriptor.of(JAVA_INT, JAVA_INT), ERRNO);
    private static final Downcall EPOLL_CTL = new Downcall("epoll_ctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS), ERRNO);
    private static final Downcall EPOLL_WAIT = new Downcall("epoll_wait",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), ERRNO);
    // int socket(int domain, int type, int protocol); int connect(int fd, const struct sockaddr *addr, socklen_t len)
    private static final Downcall SOCKET = new Downcall("socket", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), ERRNO);
    private static final Downcall CONNECT = new Downcall("connect",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT), ERRNO);
    // ssize_t send(int fd, const void *buf, size_t len, int flags)
    private static final Downcall SEND = new Downcall("send",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT), ERRNO);
    // pthread_t pthread_self(void); int pthread_kill(pthread_t, int): returns the error, no errno.
    // int sched_setaffinity(pid_t pid, size_t cpusetsize, const cpu_set_t *mask) / sched_getaffinity(...):
    // pid 0 is the calling thread (a Linux TID, not the process).
    private static final Downcall SCHED_SETAFFINITY = new Downcall("sched_setaffinity",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), ERRNO);
    private static final Downcall SCHED_GETAFFINITY = new Downcall("sched_getaffinity",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), ERRNO);
    // ssize_t getrandom(void *buf, size_t buflen, unsigned int flags): glibc 2.25 and later; absent on older ones.
    private static final Downcall GETRANDOM = new Downcall("getrandom", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT), ERRNO);
    // pid_t gettid(void)
    private static final Downcall GETTID = new Downcall("gettid", FunctionDescriptor.of(JAVA_INT));
    private static final Downcall PTHREAD_SELF = new Downcall("pthread_self", FunctionDescriptor.of(JAVA_LONG));
    private static final Downcall PTHREAD_KILL = new Downcall("pthread_kill", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT));
    // int pthread_sigmask(int how, const sigset_t *set, sigset_t *oldset): returns the error, no errno.
    private static final Downcall PTHREAD_SIGMASK = new Downcall("pthread_sigmask",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    // int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *timeout)
    private static final Downcall SIGTIMEDWAIT = new Downcall("sigtimedwait",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS), ERRNO);
    // int prctl(int option, unsigned long arg2, ...): the four-argument shape.
    private static final Downcall PRCTL = new Downcall("prctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG), Linker.Option.firstVariadicArg(1), ERRNO);
    // long syscall(long number, ...): for calls glibc does not wrap (seccomp); six register arguments.
    private static final Downcall SYSCALL = new Downcall("syscall",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            Linker.Option.firstVariadicArg(1), ERRNO);
    // const char *strerrorname_np(int) and strerrordesc_np(int): glibc 2.32+, thread-safe.
    private static final Downcall STRERRORNAME = new Downcall("strerrorname_np", FunctionDescriptor.of(ADDRESS, JAVA_INT));
    private static final Downcall STRERRORDESC = new Downcall("strerrordesc_np", FunctionDescriptor.of(ADDRESS, JAVA_INT));

    /** A buffer for the errno of calls made by one thread; lives as long as {@code arena}. */
    public static MemorySegment allocateCallState(Arena arena) {
        return arena.allocate(CALL_STATE);
    }

    /** The errno the last call made with {@code callState} left there. */
    public static int errno(MemorySegment callState) {
        return (int) CALL_STATE_ERRNO.get(callState, 0L);
    }

    /** The symbolic name of {@code errno}, e.g. {@code EINVAL}. */
    public static String errnoName(int errno) {
        return describe(STRERRORNAME, errno, "errno " + errno);
    }

    static String errnoDescription(int errno) {
        return describe(STRERRORDESC, errno, "unknown error");
    }

    private static String describe(Downcall function, int errno, String fallback) {
        if (!function.available()) {
            return fallback;
        }
        try {
            MemorySegment text = (MemorySegment) function.handle().invokeExact(errno);
            return text.equals(MemorySegment.NULL) ? fallback : text.reinterpret(256).getString(0);
        } catch (Throwable t) {
            return fallback;
        }
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    // ---- one-off calls: an errno buffer each, failures turned into exceptions in one place ----

    /** A libc call that returns a negative number on failure, with errno in {@code callState}. */
    @FunctionalInterface
    interface Call {
        /** {@code arguments} gives zeroed native memory that lives until the call returns. */
        long invoke(SegmentAllocator arguments, MemorySegment callState) throws Throwable;
    }

    /**
     * Per thread, the native memory of one call's errno buffer and arguments, reused call after call:
     * a file server makes several calls per guest request, and an arena per call (a session, a
     * malloc and a free) cost more than the system call itself.
     */
    private static final class Scratch implements SegmentAllocator {
        private static final long BYTES = 16 * 1024;
        private final MemorySegment memory = Arena.ofAuto().allocate(BYTES, 16);
        private long used;
        private Arena overflow; // for the rare call whose arguments do not fit
        private boolean busy;

        @Override
        public MemorySegment allocate(long byteSize, long byteAlignment) {
            long start = (used + byteAlignment - 1) & -byteAlignment;
            if (start + byteSize > BYTES) {
                if (overflow == null) {
                    overflow = Arena.ofConfined();
                }
                return overflow.allocate(byteSize, byteAlignment);
            }
            used = start + byteSize;
            return memory.asSlice(start, byteSize).fill((byte) 0);
        }

        void release() {
            used = 0;
            busy = false;
            if (overflow != null) {
                overflow.close();
                overflow = null;
            }
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /**
     * Makes a one-off call with an errno buffer (and memory for its arguments) of its own; returns
     * its result when it succeeded, else the negated errno, as the kernel's system calls do, for
     * callers that tell errnos apart.
     */
    static long tryCall(Call call) {
        Scratch scratch = SCRATCH.get();
        if (scratch.busy) { // a call made while making another: an arena of its own
            try (Arena arena = Arena.ofConfined()) {
                return invoke(call, arena);
            }
        }
        scratch.busy = true;
        try {
            return invoke(call, scratch);
        } finally {
            scratch.release();
        }
    }

    private static long invoke(Call call, SegmentAllocator arguments) {
        try {
            MemorySegment state = arguments.allocate(CALL_STATE);
            long result = call.invoke(arguments, state);
            return result < 0 ? -errno(state) : result;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@link #tryCall}, a failure thrown as a {@link NativeCallException} naming {@code what} and the errno. */
    static long call(String what, Call call) {
        long result = tryCall(call);
        if (result < 0) {
            throw new NativeCallException(what, (int) -result);
        }
        return result;
    }

    // ---- ioctl: raw forms return -1 with errno in callState; the others throw ----

    public static int ioctlRaw(MemorySegment callState, int fd, long request, long arg) {
        try {
            return (int) IOCTL_LONG.handle().invokeExact(callState, fd, request, arg);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int ioctlRaw(MemorySegment callState, int fd, long request, MemorySegment arg) {
        try {
            return (int) IOCTL_PTR.handle().invokeExact(callState, fd, request, arg);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** ioctl(2) with an integer argument; a failure names the request as {@code name}. */
    public static int ioctl(int fd, long request, long arg, String name) {
        return (int) call("ioctl(" + name + ")", (arena, state) -> ioctlRaw(state, fd, request, arg));
    }

    /** ioctl(2) with a pointer argument; a failure names the request as {@code name}. */
    public static int ioctl(int fd, long request, MemorySegment arg, String name) {
        return (int) call("ioctl(" + name + ")", (arena, state) -> ioctlRaw(state, fd, request, arg));
    }

    // ---- files, memory, events ----

    public static int open(String path, int flags) {
        return (int) call("open(" + path + ")", (arena, state) -> (int) OPEN.handle().invokeExact(state, arena.allocateFrom(path), flags, 0));
    }

    static void close(int fd) {
        // Linux releases the descriptor even when close reports an error, so never retry it.
        if (tryCall((arena, state) -> (int) CLOSE.handle().invokeExact(state, fd)) == -EBADF) {
            throw new NativeCallException("close(" + fd + ")", EBADF);
        }
    }

    public static MemorySegment mmap(long length, int prot, int flags, int fd, long offset, String what) {
        // MAP_FAILED is (void *) -1; every user-space address is positive as a long.
        return MemorySegment.ofAddress(call("mmap(" + what + ", " + length + " bytes)", (arena, state) ->
                ((MemorySegment) MMAP.handle().invokeExact(state, MemorySegment.NULL, length, prot, flags, fd, offset)).address()));
    }

    public static void munmap(long address, long length) {
        call("munmap(0x" + Long.toHexString(address) + ", " + length + ")",
                (arena, state) -> (int) MUNMAP.handle().invokeExact(state, MemorySegment.ofAddress(address), length));
    }

    /** madvise(2); returns false with the advice not taken (the kernel lacks the feature), never throws for that. */
    static boolean madvise(long address, long length, int advice) {
        return tryCall((arena, state) -> (int) MADVISE.handle().invokeExact(state, MemorySegment.ofAddress(address), length, advice)) == 0;
    }

    /**
     * madvise(2) over {@code range} for advice that must be taken: a failure throws, naming the
     * advice as {@code name}. Passing the segment (not its address) keeps its arena from closing
     * during the call.
     */
    static void madviseOrThrow(MemorySegment range, int advice, String name) {
        call("madvise(0x" + Long.toHexString(range.address()) + ", " + range.byteSize() + ", " + name + ")",
                (arena, state) -> (int) MADVISE.handle().invokeExact(state, range, range.byteSize(), advice));
    }

    static int eventfd(int initialValue, int flags) {
        return (int) call("eventfd", (arena, state) -> (int) EVENTFD.handle().invokeExact(state, initialValue, flags));
    }

    static int memfdCreate(String name, int flags) {
        return (int) call("memfd_create(" + name + ")", (arena, state) -> (int) MEMFD_CREATE.handle().invokeExact(state, arena.allocateFrom(name), flags));
    }

    static void ftruncate(int fd, long length) {
        call("ftruncate(" + length + ")", (arena, state) -> (int) FTRUNCATE.handle().invokeExact(state, fd, length));
    }

    /** lseek(2); returns the new offset, or -1 with errno in {@code callState}. */
    static long lseekRaw(MemorySegment callState, int fd, long offset, int whence) {
        try {
            return (long) LSEEK.handle().invokeExact(callState, fd, offset, whence);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fcntl(2) with a pointer argument; returns its result, or -1 with errno in {@code callState}. */
    static int fcntlRaw(MemorySegment callState, int fd, int cmd, MemorySegment arg) {
        try {
            return (int) FCNTL_PTR.handle().invokeExact(callState, fd, cmd, arg);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fallocate(2); returns 0, or -1 with errno in {@code callState}. */
    static int fallocateRaw(MemorySegment callState, int fd, int mode, long offset, long length) {
        try {
            return (int) FALLOCATE.handle().invokeExact(callState, fd, mode, offset, length);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** preadv(2), or pwritev(2) when {@code write}; returns bytes moved, or -1 with errno in {@code callState}. */
    static long positionalVectorRaw(MemorySegment callState, boolean write, int fd, MemorySegment iov, int count, long offset) {
        try {
            return write ? (long) PWRITEV.handle().invokeExact(callState, fd, iov, count, offset)
                    : (long) PREADV.handle().invokeExact(callState, fd, iov, count, offset);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Each thread's vector for {@link #positionalTransfer}, grown as needed: a transfer allocates no native memory. */
    private static final ThreadLocal<IoVector> TRANSFER_VECTOR = ThreadLocal.withInitial(() -> new IoVector(16));

    /**
     * {@code preadv(2)} (or {@code pwritev(2)} when {@code write}) of {@code buffers[0..count)} in turn
     * from {@code offset} on descriptor {@code fd}, as {@link IoVector#transfer} moves them; returns the
     * bytes moved, fewer than the buffers hold only when a read meets the end of the file. The buffers
     * must be native segments. {@code what} names the file in errors.
     */
    static long positionalTransfer(boolean write, int fd, Object what, long offset, MemorySegment[] buffers, int count)
            throws NativeIoException {
        IoVector vector = TRANSFER_VECTOR.get();
        if (vector.capacity() < count) {
            vector = new IoVector(count);
            TRANSFER_VECTOR.set(vector);
        }
        vector.clear();
        for (int i = 0; i < count; i++) {
            vector.add(buffers[i], 0, buffers[i].byteSize());
        }
        return vector.transfer(write, fd, what, offset);
    }

    /** writev(2); returns bytes written, or -1 with errno in {@code callState}. */
    static long writevRaw(MemorySegment callState, int fd, MemorySegment iov, int count) {
        try {
            return (long) WRITEV.handle().invokeExact(callState, fd, iov, count);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Fills {@code iov[0, n)} with {@code buffers[0, n)}; returns the bytes they describe. The buffers must be native segments. */
    static long describe(MemorySegment iov, MemorySegment[] buffers, int n) {
        long total = 0;
        for (int i = 0; i < n; i++) {
            MemorySegment b = buffers[i];
            if (!b.isNative()) {
                throw new IllegalArgumentException("vectored I/O needs native memory, and buffer " + i + " is on the Java heap");
            }
            long offset = i * IOVEC.byteSize();
            iov.set(JAVA_LONG, offset + IOV_BASE, b.address()); // a native address, no slice object
            iov.set(JAVA_LONG, offset + IOV_LEN, b.byteSize());
            total += b.byteSize();
        }
        return total;
    }

    /** read(2) into {@code buffer}; returns bytes read, or -1 with errno in {@code callState}. */
    static long readRaw(MemorySegment callState, int fd, MemorySegment buffer) {
        return readRaw(callState, fd, buffer, buffer.byteSize());
    }

    /** read(2) of at most {@code count} bytes into the start of {@code buffer}. */
    static long readRaw(MemorySegment callState, int fd, MemorySegment buffer, long count) {
        checkCount(buffer, count);
        try {
            return (long) READ.handle().invokeExact(callState, fd, buffer, count);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** write(2) from {@code buffer}; returns bytes written, or -1 with errno in {@code callState}. */
    static long writeRaw(MemorySegment callState, int fd, MemorySegment buffer) {
        try {
            return (long) WRITE.handle().invokeExact(callState, fd, buffer, buffer.byteSize());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** send(2) of the first {@code count} bytes of {@code buffer}; returns bytes sent, or -1 with errno in {@code callState}. */
    static long sendRaw(MemorySegment callState, int fd, MemorySegment buffer, long count, int flags) {
        checkCount(buffer, count);
        try {
            return (long) SEND.handle().invokeExact(callState, fd, buffer, count, flags);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static void checkCount(MemorySegment buffer, long count) {
        if (count < 0 || count > buffer.byteSize()) {
            throw new IndexOutOfBoundsException(count + " bytes do not fit a buffer of " + buffer.byteSize());
        }
    }

    /** Sets O_NONBLOCK on {@code fd}, keeping its other status flags. */
    static void setNonBlocking(int fd, String what) {
        call("fcntl(" + what + ", O_NONBLOCK)", (arena, state) -> {
            int flags = (int) FCNTL.handle().invokeExact(state, fd, F_GETFL, 0);
            return flags < 0 ? flags : (int) FCNTL.handle().invokeExact(state, fd, F_SETFL, flags | O_NONBLOCK);
        });
    }

    // ---- epoll and sockets ----

    static int epollCreate() {
        return (int) call("epoll_create1", (arena, state) -> (int) EPOLL_CREATE1.handle().invokeExact(state, IoAbi.EPOLL_CLOEXEC));
    }

    /** epoll_ctl(2); {@code event} is a {@code struct epoll_event} (ignored for EPOLL_CTL_DEL). */
    static void epollCtl(int epfd, int op, int fd, MemorySegment event, String what) {
        call("epoll_ctl(" + what + ")", (arena, state) -> (int) EPOLL_CTL.handle().invokeExact(state, epfd, op, fd, event));
    }

    /** epoll_wait(2) into {@code events}; returns how many are ready, or -1 with errno in {@code callState}. */
    static int epollWaitRaw(MemorySegment callState, int epfd, MemorySegment events, int maxEvents, int timeoutMillis) {
        try {
            return (int) EPOLL_WAIT.handle().invokeExact(callState, epfd, events, maxEvents, timeoutMillis);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int socket(int domain, int type) {
        return (int) call("socket", (arena, state) -> (int) SOCKET.handle().invokeExact(state, domain, type, 0));
    }

    /** connect(2); returns 0, or -1 with errno in {@code callState}. */
    static int connectRaw(MemorySegment callState, int fd, MemorySegment address) {
        try {
            return (int) CONNECT.handle().invokeExact(callState, fd, address, (int) address.byteSize());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- threads and signals ----

    /** sched_setaffinity(0, ...): the calling thread may run only on the CPUs whose bits {@code mask} sets. */
    static void schedSetaffinityCurrentThread(MemorySegment mask) {
        call("sched_setaffinity", (arena, state) -> (int) SCHED_SETAFFINITY.handle().invokeExact(state, 0, mask.byteSize(), mask));
    }

    /** sched_getaffinity(0, ...) into {@code mask}. */
    static void schedGetaffinityCurrentThread(MemorySegment mask) {
        call("sched_getaffinity", (arena, state) -> (int) SCHED_GETAFFINITY.handle().invokeExact(state, 0, mask.byteSize(), mask));
    }

    /** prctl(2) with four integer arguments; a failure throws, naming {@code what}. */
    static void prctl(String what, int option, long arg2, long arg3, long arg4, long arg5) {
        call("prctl(" + what + ")", (arena, state) -> (int) PRCTL.handle().invokeExact(state, option, arg2, arg3, arg4, arg5));
    }

    /**
     * syscall(2): system call {@code number} with six register arguments (those it does not take
     * are ignored); returns its result, or the negated errno.
     */
    static long syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6) {
        return tryCall((arena, state) -> (long) SYSCALL.handle().invokeExact(state, number, a1, a2, a3, a4, a5, a6));
    }

    /** Whether libc has getrandom(3). */
    static boolean hasGetrandom() {
        return GETRANDOM.available();
    }

    /**
     * getrandom(buf, buf.byteSize(), 0): returns the bytes written (possibly fewer than asked), or the
     * negated errno. Only when {@link #hasGetrandom}.
     */
    static long getrandom(MemorySegment buf) {
        MethodHandle getrandom = GETRANDOM.handle();
        return tryCall((arena, state) -> (long) getrandom.invokeExact(state, buf, buf.byteSize(), 0));
    }

    /** The calling thread's Linux thread id (its {@code /proc/self/task/TID}). */
    static int gettid() {
        try {
            return (int) GETTID.handle().invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long pthreadSelf() {
        try {
            return (long) PTHREAD_SELF.handle().invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void pthreadKill(long thread, int signal) {
        int error;
        try {
            error = (int) PTHREAD_KILL.handle().invokeExact(thread, signal);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (error != 0) {
            throw new NativeCallException("pthread_kill(" + signal + ")", error);
        }
    }

    /** Changes the calling thread's signal mask; {@code set} and {@code oldSet} may be NULL. */
    public static void pthreadSigmask(int how, MemorySegment set, MemorySegment oldSet) {
        int error;
        try {
            error = (int) PTHREAD_SIGMASK.handle().invokeExact(how, set, oldSet);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (error != 0) {
            throw new NativeCallException("pthread_sigmask", error);
        }
    }

    /** Takes one pending signal of {@code set} without waiting; returns it, or -1 when none is pending. */
    public static int sigtimedwaitNow(MemorySegment callState, MemorySegment set, MemorySegment zeroTimespec) {
        int signal;
        try {
            signal = (int) SIGTIMEDWAIT.handle().invokeExact(callState, set, MemorySegment.NULL, zeroTimespec);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (signal < 0 && errno(callState) != EAGAIN && errno(callState) != EINTR) {
            throw new NativeCallException("sigtimedwait", errno(callState));
        }
        return signal;
    }

    /** A glibc sigset_t holding just {@code signal}. */
    public static MemorySegment sigsetOf(Arena arena, int signal) {
        MemorySegment set = arena.allocate(SIGSET_BYTES, 8);
        setSignal(set, signal, true);
        return set;
    }

    /** sigaddset/sigdelset: bit (signal - 1) of an array of unsigned longs. */
    public static void setSignal(MemorySegment set, int signal, boolean member) {
        long offset = (long) ((signal - 1) / 64) * 8;
        long bit = 1L << ((signal - 1) % 64);
        long word = set.get(JAVA_LONG, offset);
        set.set(JAVA_LONG, offset, member ? word | bit : word & ~bit);
    }
}
