package dev.panamax.sys;

import static java.lang.foreign.MemoryLayout.paddingLayout;
import static java.lang.foreign.MemoryLayout.sequenceLayout;
import static java.lang.foreign.MemoryLayout.structLayout;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.StructLayout;
import java.util.List;

/**
 * The ABI of the host file-system calls a file server makes ({@code <fcntl.h>}, {@code
 * <sys/stat.h>}, {@code <sys/statvfs.h>}, {@code <sys/xattr.h>}, {@code <dirent.h>}, {@code
 * <errno.h>}) on x86-64 Linux. Every {@code int} and {@code long} field is the C macro of the same
 * name; a test compiles them and the layouts in {@link #STRUCTS} against the system's headers. The
 * values are public because they are also the guest's: a FUSE request carries Linux's open flags,
 * file types and errnos, and a reply carries them back.
 */
public final class FsAbi {
    private FsAbi() {}

    // errno values a file server passes on.
    public static final int EPERM = 1;
    public static final int ENOENT = 2;
    public static final int EIO = 5;
    public static final int EBADF = 9;
    public static final int EACCES = 13;
    public static final int EEXIST = 17;
    public static final int EXDEV = 18;
    public static final int ENOTDIR = 20;
    public static final int EISDIR = 21;
    public static final int EINVAL = 22;
    public static final int ENFILE = 23;
    public static final int EFBIG = 27;
    public static final int ENOSPC = 28;
    public static final int EROFS = 30;
    public static final int ERANGE = 34;
    public static final int ENAMETOOLONG = 36;
    public static final int ENOSYS = 38;
    public static final int ENOTEMPTY = 39;
    public static final int ELOOP = 40;
    public static final int ENODATA = 61;
    public static final int EPROTO = 71;
    public static final int EOVERFLOW = 75;
    public static final int EOPNOTSUPP = 95;

    // open(2) flags.
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_ACCMODE = 3;
    public static final int O_CREAT = 0x40;
    public static final int O_EXCL = 0x80;
    public static final int O_NOCTTY = 0x100;
    public static final int O_TRUNC = 0x200;
    public static final int O_APPEND = 0x400;
    public static final int O_NONBLOCK = 0x800;
    public static final int O_DIRECTORY = 0x10000;
    public static final int O_NOFOLLOW = 0x20000;
    public static final int O_CLOEXEC = 0x80000;
    public static final int O_PATH = 0x200000;

    // *at() flags.
    public static final int AT_FDCWD = -100;
    public static final int AT_SYMLINK_NOFOLLOW = 0x100;
    public static final int AT_REMOVEDIR = 0x200;
    public static final int AT_SYMLINK_FOLLOW = 0x400;
    public static final int AT_EMPTY_PATH = 0x1000;
    public static final int RENAME_NOREPLACE = 1;
    public static final int RENAME_EXCHANGE = 2;
    public static final int RENAME_WHITEOUT = 4;

    // st_mode file types.
    public static final int S_IFMT = 0170000;
    public static final int S_IFSOCK = 0140000;
    public static final int S_IFLNK = 0120000;
    public static final int S_IFREG = 0100000;
    public static final int S_IFBLK = 060000;
    public static final int S_IFDIR = 040000;
    public static final int S_IFCHR = 020000;
    /** The set-group-ID bit: in a directory, new files take the directory's group. */
    public static final int S_ISGID = 02000;
    public static final int S_IFIFO = 010000;

    // lseek(2), fallocate(2), utimensat(2), xattr flags.
    public static final int SEEK_SET = 0;
    public static final int SEEK_CUR = 1;
    public static final int SEEK_END = 2;
    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;
    public static final int FALLOC_FL_KEEP_SIZE = 1;
    public static final int FALLOC_FL_PUNCH_HOLE = 2;
    public static final long UTIME_NOW = (1L << 30) - 1;
    public static final long UTIME_OMIT = (1L << 30) - 2;
    public static final int XATTR_CREATE = 1;
    public static final int XATTR_REPLACE = 2;
    public static final int XATTR_NAME_MAX = 255;
    public static final int XATTR_SIZE_MAX = 65536;
    public static final int NAME_MAX = 255;
    public static final int PATH_MAX = 4096;

    static final StructLayout TIMESPEC = structLayout(JAVA_LONG.withName("tv_sec"), JAVA_LONG.withName("tv_nsec")).withName("timespec");

    /** glibc's {@code struct stat} on x86-64. */
    static final StructLayout STAT = structLayout(
            JAVA_LONG.withName("st_dev"), JAVA_LONG.withName("st_ino"), JAVA_LONG.withName("st_nlink"),
            JAVA_INT.withName("st_mode"), JAVA_INT.withName("st_uid"), JAVA_INT.withName("st_gid"), paddingLayout(4),
            JAVA_LONG.withName("st_rdev"), JAVA_LONG.withName("st_size"), JAVA_LONG.withName("st_blksize"),
            JAVA_LONG.withName("st_blocks"), TIMESPEC.withName("st_atim"), TIMESPEC.withName("st_mtim"),
            TIMESPEC.withName("st_ctim"), paddingLayout(24)).withName("stat");

    /** glibc's {@code struct statvfs} on x86-64. */
    static final StructLayout STATVFS = structLayout(
            JAVA_LONG.withName("f_bsize"), JAVA_LONG.withName("f_frsize"), JAVA_LONG.withName("f_blocks"),
            JAVA_LONG.withName("f_bfree"), JAVA_LONG.withName("f_bavail"), JAVA_LONG.withName("f_files"),
            JAVA_LONG.withName("f_ffree"), JAVA_LONG.withName("f_favail"), JAVA_LONG.withName("f_fsid"),
            JAVA_LONG.withName("f_flag"), JAVA_LONG.withName("f_namemax"), paddingLayout(24)).withName("statvfs");

    /** The kernel's {@code struct linux_dirent64} as glibc names it ({@code struct dirent64}): the name follows {@code d_type}. */
    static final StructLayout DIRENT64 = structLayout(
            JAVA_LONG.withName("d_ino"), JAVA_LONG.withName("d_off"), JAVA_SHORT.withName("d_reclen"),
            JAVA_BYTE.withName("d_type"), sequenceLayout(256, JAVA_BYTE).withName("d_name"), paddingLayout(5)).withName("dirent64");

    static final List<StructLayout> STRUCTS = List.of(TIMESPEC, STAT, STATVFS, DIRENT64);

    static long offset(StructLayout struct, String... path) {
        return struct.byteOffset(java.util.Arrays.stream(path).map(PathElement::groupElement).toArray(PathElement[]::new));
    }
}
