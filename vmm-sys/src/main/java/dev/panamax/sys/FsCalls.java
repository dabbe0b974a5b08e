package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.invoke.MethodHandle;

/**
 * The {@code *at()} family and the other libc calls of a file server, one {@code static final}
 * downcall handle each, as {@link Libc}. Every method returns the call's result when it succeeded
 * and the negated errno when it failed ({@link Libc#tryCall}); the typed wrappers ({@link
 * PathHandle}, {@link OpenFile}) turn a failure into a {@link NativeIoException}.
 */
final class FsCalls {
    private FsCalls() {}

    private static final Linker.Option ERRNO = Libc.ERRNO;

    // int openat(int dirfd, const char *path, int flags, ... /* mode_t mode */)
    private static final MethodHandle OPENAT = Libc.downcall("openat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(3), ERRNO);
    // int fstatat(int dirfd, const char *path, struct stat *buf, int flags)
    private static final MethodHandle FSTATAT = Libc.downcall("fstatat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT), ERRNO);
    // ssize_t getdents64(int fd, void *dirp, size_t count)
    private static final MethodHandle GETDENTS64 = Libc.downcall("getdents64",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), ERRNO);
    // int mkdirat(int dirfd, const char *path, mode_t mode)
    private static final MethodHandle MKDIRAT = Libc.downcall("mkdirat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT), ERRNO);
    // int mknodat(int dirfd, const char *path, mode_t mode, dev_t dev)
    private static final MethodHandle MKNODAT = Libc.downcall("mknodat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG), ERRNO);
    // int unlinkat(int dirfd, const char *path, int flags)
    private static final MethodHandle UNLINKAT = Libc.downcall("unlinkat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT), ERRNO);
    // int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)
    private static final MethodHandle RENAMEAT2 = Libc.downcall("renameat2",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT), ERRNO);
    // int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
    private static final MethodHandle LINKAT = Libc.downcall("linkat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT), ERRNO);
    // int symlinkat(const char *target, int newdirfd, const char *linkpath)
    private static final MethodHandle SYMLINKAT = Libc.downcall("symlinkat",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS), ERRNO);
    // ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size)
    private static final MethodHandle READLINKAT = Libc.downcall("readlinkat",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG), ERRNO);
    // int fchmodat(int dirfd, const char *path, mode_t mode, int flags); int fchmod(int fd, mode_t mode)
    private static final MethodHandle FCHMODAT = Libc.downcall("fchmodat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), ERRNO);
    private static final MethodHandle FCHMOD = Libc.downcall("fchmod", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), ERRNO);
    // int fchownat(int dirfd, const char *path, uid_t owner, gid_t group, int flags)
    private static final MethodHandle FCHOWNAT = Libc.downcall("fchownat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT), ERRNO);
    // int utimensat(int dirfd, const char *path, const struct timespec times[2], int flags)
    private static final MethodHandle UTIMENSAT = Libc.downcall("utimensat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT), ERRNO);
    // int ftruncate(int fd, off_t length)
    private static final MethodHandle FTRUNCATE = Libc.downcall("ftruncate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG), ERRNO);
    // int fsync(int fd); int fdatasync(int fd)
    private static final MethodHandle FSYNC = Libc.downcall("fsync", FunctionDescriptor.of(JAVA_INT, JAVA_INT), ERRNO);
    private static final MethodHandle FDATASYNC = Libc.downcall("fdatasync", FunctionDescriptor.of(JAVA_INT, JAVA_INT), ERRNO);
    // int fstatvfs(int fd, struct statvfs *buf)
    private static final MethodHandle FSTATVFS = Libc.downcall("fstatvfs", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS), ERRNO);
    // ssize_t pread(int fd, void *buf, size_t count, off_t offset) / pwrite(...)
    private static final MethodHandle PREAD = Libc.downcall("pread", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), ERRNO);
    private static final MethodHandle PWRITE = Libc.downcall("pwrite", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), ERRNO);
    // ssize_t getxattr(const char *path, const char *name, void *value, size_t size)
    private static final MethodHandle GETXATTR = Libc.downcall("getxattr",
            FunctionDescriptor.of(JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG), ERRNO);
    // int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)
    private static final MethodHandle SETXATTR = Libc.downcall("setxattr",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), ERRNO);
    // ssize_t listxattr(const char *path, char *list, size_t size)
    private static final MethodHandle LISTXATTR = Libc.downcall("listxattr", FunctionDescriptor.of(JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG), ERRNO);
    // int removexattr(const char *path, const char *name)
    private static final MethodHandle REMOVEXATTR = Libc.downcall("removexattr", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), ERRNO);

    /** A NUL-terminated copy of {@code bytes}, which hold no NUL themselves. */
    static MemorySegment cString(SegmentAllocator arguments, byte[] bytes) {
        MemorySegment s = arguments.allocate(bytes.length + 1L);
        MemorySegment.copy(bytes, 0, s, JAVA_BYTE, 0, bytes.length);
        return s; // allocate zeroes, so the last byte is the NUL
    }

    /**
     * {@code fstatat(2)} of {@code path} in {@code dirfd}, read as a {@link FileStat}; a failure is
     * thrown as {@code call(target)} with its errno.
     */
    static FileStat stat(int dirfd, byte[] path, int flags, String call, Object target) throws NativeIoException {
        FileStat[] stat = new FileStat[1];
        long result = Libc.tryCall((arena, state) -> {
            MemorySegment buffer = arena.allocate(FsAbi.STAT);
            int r = (int) FSTATAT.invokeExact(state, dirfd, cString(arena, path), buffer, flags);
            if (r == 0) {
                stat[0] = FileStat.read(buffer);
            }
            return r;
        });
        PathHandle.check(result, call, target);
        return stat[0];
    }

    static long openat(int dirfd, byte[] path, int flags, int mode) {
        return Libc.tryCall((arena, state) -> (int) OPENAT.invokeExact(state, dirfd, cString(arena, path), flags, mode));
    }

    static long getdents64(int fd, MemorySegment buffer) {
        return Libc.tryCall((arena, state) -> (long) GETDENTS64.invokeExact(state, fd, buffer, buffer.byteSize()));
    }

    static long mkdirat(int dirfd, byte[] path, int mode) {
        return Libc.tryCall((arena, state) -> (int) MKDIRAT.invokeExact(state, dirfd, cString(arena, path), mode));
    }

    static long mknodat(int dirfd, byte[] path, int mode, long dev) {
        return Libc.tryCall((arena, state) -> (int) MKNODAT.invokeExact(state, dirfd, cString(arena, path), mode, dev));
    }

    static long unlinkat(int dirfd, byte[] path, int flags) {
        return Libc.tryCall((arena, state) -> (int) UNLINKAT.invokeExact(state, dirfd, cString(arena, path), flags));
    }

    static long renameat2(int oldDirfd, byte[] oldPath, int newDirfd, byte[] newPath, int flags) {
        return Libc.tryCall((arena, state) ->
                (int) RENAMEAT2.invokeExact(state, oldDirfd, cString(arena, oldPath), newDirfd, cString(arena, newPath), flags));
    }

    static long linkat(int oldDirfd, byte[] oldPath, int newDirfd, byte[] newPath, int flags) {
        return Libc.tryCall((arena, state) ->
                (int) LINKAT.invokeExact(state, oldDirfd, cString(arena, oldPath), newDirfd, cString(arena, newPath), flags));
    }

    static long symlinkat(byte[] target, int newDirfd, byte[] linkPath) {
        return Libc.tryCall((arena, state) -> (int) SYMLINKAT.invokeExact(state, cString(arena, target), newDirfd, cString(arena, linkPath)));
    }

    static long readlinkat(int dirfd, byte[] path, MemorySegment buffer) {
        return Libc.tryCall((arena, state) ->
                (long) READLINKAT.invokeExact(state, dirfd, cString(arena, path), buffer, buffer.byteSize()));
    }

    static long fchmodat(int dirfd, byte[] path, int mode, int flags) {
        return Libc.tryCall((arena, state) -> (int) FCHMODAT.invokeExact(state, dirfd, cString(arena, path), mode, flags));
    }

    static long fchmod(int fd, int mode) {
        return Libc.tryCall((arena, state) -> (int) FCHMOD.invokeExact(state, fd, mode));
    }

    static long fchownat(int dirfd, byte[] path, int uid, int gid, int flags) {
        return Libc.tryCall((arena, state) -> (int) FCHOWNAT.invokeExact(state, dirfd, cString(arena, path), uid, gid, flags));
    }

    /** utimensat(2) with {@code times} as two {@code (seconds, nanoseconds)} pairs, atime first. */
    static long utimensat(int dirfd, byte[] path, long[] times, int flags) {
        return Libc.tryCall((arena, state) -> {
            MemorySegment ts = arena.allocate(FsAbi.TIMESPEC, 2);
            MemorySegment.copy(times, 0, ts, JAVA_LONG, 0, 4);
            return (int) UTIMENSAT.invokeExact(state, dirfd, cString(arena, path), ts, flags);
        });
    }

    static long ftruncate(int fd, long length) {
        return Libc.tryCall((arena, state) -> (int) FTRUNCATE.invokeExact(state, fd, length));
    }

    static long fallocate(int fd, int mode, long offset, long length) {
        return Libc.tryCall((arena, state) -> Libc.fallocateRaw(state, fd, mode, offset, length));
    }

    static long lseek(int fd, long offset, int whence) {
        return Libc.tryCall((arena, state) -> Libc.lseekRaw(state, fd, offset, whence));
    }

    static long fsync(int fd, boolean dataOnly) {
        return Libc.tryCall((arena, state) -> dataOnly ? (int) FDATASYNC.invokeExact(state, fd) : (int) FSYNC.invokeExact(state, fd));
    }

    static long fstatvfs(int fd, MemorySegment buffer) {
        return Libc.tryCall((arena, state) -> (int) FSTATVFS.invokeExact(state, fd, buffer));
    }

    static long pread(int fd, MemorySegment buffer, long offset) {
        return Libc.tryCall((arena, state) -> (long) PREAD.invokeExact(state, fd, buffer, buffer.byteSize(), offset));
    }

    static long pwrite(int fd, MemorySegment buffer, long offset) {
        return Libc.tryCall((arena, state) -> (long) PWRITE.invokeExact(state, fd, buffer, buffer.byteSize(), offset));
    }

    static long getxattr(byte[] path, byte[] name, MemorySegment value) {
        return Libc.tryCall((arena, state) ->
                (long) GETXATTR.invokeExact(state, cString(arena, path), cString(arena, name), value, value.byteSize()));
    }

    static long setxattr(byte[] path, byte[] name, MemorySegment value, int flags) {
        return Libc.tryCall((arena, state) ->
                (int) SETXATTR.invokeExact(state, cString(arena, path), cString(arena, name), value, value.byteSize(), flags));
    }

    static long listxattr(byte[] path, MemorySegment list) {
        return Libc.tryCall((arena, state) -> (long) LISTXATTR.invokeExact(state, cString(arena, path), list, list.byteSize()));
    }

    static long removexattr(byte[] path, byte[] name) {
        return Libc.tryCall((arena, state) -> (int) REMOVEXATTR.invokeExact(state, cString(arena, path), cString(arena, name)));
    }
}
