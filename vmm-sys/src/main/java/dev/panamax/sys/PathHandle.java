package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * An {@code O_PATH} descriptor of a file, directory or symbolic link, as virtiofsd keeps one per
 * inode: it pins the file without opening it for I/O, and every name a file server is given is
 * resolved relative to one, as a single {@link FileName} with {@code O_NOFOLLOW}, never as a path
 * string. Operations on the file itself go through {@code AT_EMPTY_PATH} or, for the calls that
 * take no descriptor (xattrs, chmod, times, reopening for I/O), through {@code /proc/self/fd/N},
 * which names this very file and is never followed further: the path is built from the
 * descriptor's number, never from a guest's string.
 *
 * <p>Failures are {@link NativeIoException}s carrying the errno, for the server to pass on.
 */
public final class PathHandle extends Fd {
    private static final byte[] EMPTY = new byte[0];
    private static final byte[] DOT_DOT = {'.', '.'};
    private static final int PATH_FLAGS = FsAbi.O_PATH | FsAbi.O_NOFOLLOW | FsAbi.O_CLOEXEC;

    private PathHandle(int fd, String what) {
        super(fd, what);
    }

    /** An {@code O_PATH} handle of the directory {@code dir} (a host path from the configuration, never a guest's). */
    public static PathHandle openDirectory(Path dir) throws NativeIoException {
        byte[] path = dir.toString().getBytes(StandardCharsets.UTF_8);
        int fd = (int) check(FsCalls.openat(FsAbi.AT_FDCWD, path, FsAbi.O_PATH | FsAbi.O_DIRECTORY | FsAbi.O_CLOEXEC, 0),
                "open", dir + ", O_PATH");
        return new PathHandle(fd, "directory " + dir);
    }

    /**
     * {@code result} when it is not negative; else a {@link NativeIoException} for {@code call(target)},
     * the message built only then (this is every file server request's path).
     */
    static long check(long result, String call, Object target) throws NativeIoException {
        if (result < 0) {
            throw new NativeIoException(call + "(" + target + ")", (int) -result);
        }
        return result;
    }

    private byte[] procPath() {
        return ("/proc/self/fd/" + fd()).getBytes(StandardCharsets.US_ASCII);
    }

    /** The entry {@code name} of this directory, not followed if it is a symbolic link. */
    public PathHandle lookup(FileName name) throws NativeIoException {
        int fd = (int) check(FsCalls.openat(fd(), name.bytes(), PATH_FLAGS, 0), "openat", name);
        return new PathHandle(fd, "entry " + name);
    }

    /**
     * This directory's parent as the host sees it. A file server must check the answer against what
     * it serves: the parent of the shared directory's root lies outside it.
     */
    public PathHandle parent() throws NativeIoException {
        int fd = (int) check(FsCalls.openat(fd(), DOT_DOT, FsAbi.O_PATH | FsAbi.O_DIRECTORY | FsAbi.O_CLOEXEC, 0), "openat", "..");
        return new PathHandle(fd, "parent");
    }

    /** {@code fstatat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)}: the file itself. */
    public FileStat stat() throws NativeIoException {
        return FsCalls.stat(fd(), EMPTY, FsAbi.AT_EMPTY_PATH | FsAbi.AT_SYMLINK_NOFOLLOW, "fstatat", this);
    }

    /**
     * The entry {@code name} of this directory as {@code fstatat(fd, name, AT_SYMLINK_NOFOLLOW)} sees
     * it, without opening it: a symbolic link is the link itself.
     */
    public FileStat stat(FileName name) throws NativeIoException {
        return FsCalls.stat(fd(), name.bytes(), FsAbi.AT_SYMLINK_NOFOLLOW, "fstatat", name);
    }

    /**
     * Opens this file for I/O with {@code flags} (O_CREAT and O_EXCL dropped) through its {@code
     * /proc/self/fd} entry, and checks that what opened is this file. The caller refuses symbolic
     * links and special files before: this is for regular files and directories.
     */
    public OpenFile reopen(int flags) throws NativeIoException {
        FileStat expected = stat();
        if (expected.isSymbolicLink()) {
            throw new NativeIoException("open(" + this + ")", FsAbi.ELOOP);
        }
        int clean = (flags & ~(FsAbi.O_CREAT | FsAbi.O_EXCL | FsAbi.O_NOFOLLOW | FsAbi.O_PATH)) | FsAbi.O_CLOEXEC | FsAbi.O_NOCTTY;
        int fd = (int) check(FsCalls.openat(FsAbi.AT_FDCWD, procPath(), clean, 0), "open", this);
        OpenFile file = new OpenFile(fd, "open " + this);
        try {
            if (!file.stat().sameFile(expected)) {
                throw new NativeIoException("open(" + this + ") reached another file", FsAbi.EIO);
            }
            return file;
        } catch (NativeIoException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /** {@code openat(fd, name, flags | O_CREAT | O_NOFOLLOW, mode)}: creates (or opens, without O_EXCL) a regular file. */
    public OpenFile create(FileName name, int flags, int mode) throws NativeIoException {
        int clean = (flags & ~(FsAbi.O_PATH | FsAbi.O_DIRECTORY)) | FsAbi.O_CREAT | FsAbi.O_NOFOLLOW | FsAbi.O_CLOEXEC | FsAbi.O_NOCTTY;
        int fd = (int) check(FsCalls.openat(fd(), name.bytes(), clean, mode & 07777), "openat", name);
        return new OpenFile(fd, "created " + name);
    }

    public void makeDirectory(FileName name, int mode) throws NativeIoException {
        check(FsCalls.mkdirat(fd(), name.bytes(), mode & 07777), "mkdirat", name);
    }

    /** {@code mknodat} of a regular file only: devices, FIFOs and sockets are refused with EPERM. */
    public void makeRegularFile(FileName name, int mode) throws NativeIoException {
        if ((mode & FsAbi.S_IFMT) != FsAbi.S_IFREG && (mode & FsAbi.S_IFMT) != 0) {
            throw new NativeIoException("mknodat(" + name + ")", FsAbi.EPERM);
        }
        check(FsCalls.mknodat(fd(), name.bytes(), FsAbi.S_IFREG | (mode & 07777), 0), "mknodat", name);
    }

    /** {@code unlinkat}; with {@code directory}, AT_REMOVEDIR (rmdir). */
    public void remove(FileName name, boolean directory) throws NativeIoException {
        check(FsCalls.unlinkat(fd(), name.bytes(), directory ? FsAbi.AT_REMOVEDIR : 0), "unlinkat", name);
    }

    /** {@code renameat2(fd, name, newDirectory, newName, flags)}. */
    public void rename(FileName name, PathHandle newDirectory, FileName newName, int flags) throws NativeIoException {
        check(FsCalls.renameat2(fd(), name.bytes(), newDirectory.fd(), newName.bytes(), flags), "renameat2", name + ", " + newName);
    }

    /**
     * Makes {@code name} in this directory a hard link to {@code target}: with {@code AT_EMPTY_PATH}
     * where allowed (it needs CAP_DAC_READ_SEARCH), else through {@code target}'s {@code /proc/self/fd}
     * entry, as virtiofsd does.
     */
    public void link(PathHandle target, FileName name) throws NativeIoException {
        long result = FsCalls.linkat(target.fd(), EMPTY, fd(), name.bytes(), FsAbi.AT_EMPTY_PATH);
        if (result == -FsAbi.ENOENT || result == -FsAbi.EPERM || result == -FsAbi.EINVAL) {
            result = FsCalls.linkat(FsAbi.AT_FDCWD, target.procPath(), fd(), name.bytes(), FsAbi.AT_SYMLINK_FOLLOW);
        }
        check(result, "linkat", name);
    }

    /** Makes {@code name} a symbolic link holding {@code target}, which is stored, never resolved here. */
    public void symlink(FileName name, byte[] target) throws NativeIoException {
        check(FsCalls.symlinkat(target, fd(), name.bytes()), "symlinkat", name);
    }

    /** The target this symbolic link holds. */
    public byte[] readLink() throws NativeIoException {
        return readLink(fd(), EMPTY, "readlinkat");
    }

    /**
     * Where this file is now, as the host's {@code /proc/self/fd} link of this handle says: an absolute
     * path, or one ending in {@code " (deleted)"} for a file no longer in any directory. For a server
     * that must find the same file again later by walking names from a directory it trusts (a
     * snapshot of a shared folder); nothing here follows it.
     */
    public byte[] hostPath() throws NativeIoException {
        return readLink(FsAbi.AT_FDCWD, procPath(), "readlink");
    }

    /** {@code readlinkat(dirfd, path)}: the link's contents, refused when they fill PATH_MAX (readlink would cut them short unsaid). */
    private byte[] readLink(int dirfd, byte[] path, String call) throws NativeIoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(FsAbi.PATH_MAX);
            int length = (int) check(FsCalls.readlinkat(dirfd, path, buffer), call, this);
            if (length == buffer.byteSize()) {
                throw new NativeIoException(call + "(" + this + ")", FsAbi.ENAMETOOLONG);
            }
            return buffer.asSlice(0, length).toArray(JAVA_BYTE);
        }
    }

    /** Sets the permission bits; the caller refuses symbolic links (Linux has no mode for them). */
    public void chmod(int mode) throws NativeIoException {
        check(FsCalls.fchmodat(FsAbi.AT_FDCWD, procPath(), mode & 07777, 0), "fchmodat", this);
    }

    /** Sets the owner and group; -1 keeps one. Of a symbolic link, the link itself. */
    public void chown(int uid, int gid) throws NativeIoException {
        check(FsCalls.fchownat(fd(), EMPTY, uid, gid, FsAbi.AT_EMPTY_PATH | FsAbi.AT_SYMLINK_NOFOLLOW), "fchownat", this);
    }

    /**
     * Sets access and modification times, each as seconds and nanoseconds; nanoseconds may be
     * {@link FsAbi#UTIME_NOW} or {@link FsAbi#UTIME_OMIT}.
     */
    public void setTimes(long atimeSeconds, long atimeNanos, long mtimeSeconds, long mtimeNanos) throws NativeIoException {
        long[] times = {atimeSeconds, atimeNanos, mtimeSeconds, mtimeNanos};
        check(FsCalls.utimensat(fd(), EMPTY, times, FsAbi.AT_EMPTY_PATH | FsAbi.AT_SYMLINK_NOFOLLOW), "utimensat", this);
    }

    public FileSystemStats fileSystemStats() throws NativeIoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(FsAbi.STATVFS);
            check(FsCalls.fstatvfs(fd(), buffer), "fstatvfs", this);
            return FileSystemStats.read(buffer);
        }
    }

    /**
     * The extended attribute {@code name} into {@code value}; returns its length. With an empty
     * {@code value}, only its length (as getxattr(2) with size 0).
     */
    public long getXattr(byte[] name, MemorySegment value) throws NativeIoException {
        return check(FsCalls.getxattr(procPath(), name, value), "getxattr", this);
    }

    /** The NUL-separated names of the extended attributes into {@code list}; an empty {@code list} asks only the length. */
    public long listXattrs(MemorySegment list) throws NativeIoException {
        return check(FsCalls.listxattr(procPath(), list), "listxattr", this);
    }

    public void setXattr(byte[] name, MemorySegment value, int flags) throws NativeIoException {
        check(FsCalls.setxattr(procPath(), name, value, flags), "setxattr", this);
    }

    public void removeXattr(byte[] name) throws NativeIoException {
        check(FsCalls.removexattr(procPath(), name), "removexattr", this);
    }
}
