package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.MemorySegment;

/** What {@code fstatat(2)} says of a file: its {@code struct stat}, times as seconds and nanoseconds. */
public record FileStat(long device, long inode, long linkCount, int mode, int uid, int gid, long rdev, long size,
        long blockSize, long blocks, long atimeSeconds, long atimeNanos, long mtimeSeconds, long mtimeNanos,
        long ctimeSeconds, long ctimeNanos) {

    private static final long DEV = FsAbi.offset(FsAbi.STAT, "st_dev");
    private static final long INO = FsAbi.offset(FsAbi.STAT, "st_ino");
    private static final long NLINK = FsAbi.offset(FsAbi.STAT, "st_nlink");
    private static final long MODE = FsAbi.offset(FsAbi.STAT, "st_mode");
    private static final long UID = FsAbi.offset(FsAbi.STAT, "st_uid");
    private static final long GID = FsAbi.offset(FsAbi.STAT, "st_gid");
    private static final long RDEV = FsAbi.offset(FsAbi.STAT, "st_rdev");
    private static final long SIZE = FsAbi.offset(FsAbi.STAT, "st_size");
    private static final long BLKSIZE = FsAbi.offset(FsAbi.STAT, "st_blksize");
    private static final long BLOCKS = FsAbi.offset(FsAbi.STAT, "st_blocks");
    private static final long ATIM = FsAbi.offset(FsAbi.STAT, "st_atim");
    private static final long MTIM = FsAbi.offset(FsAbi.STAT, "st_mtim");
    private static final long CTIM = FsAbi.offset(FsAbi.STAT, "st_ctim");

    static FileStat read(MemorySegment s) {
        return new FileStat(s.get(JAVA_LONG, DEV), s.get(JAVA_LONG, INO), s.get(JAVA_LONG, NLINK), s.get(JAVA_INT, MODE),
                s.get(JAVA_INT, UID), s.get(JAVA_INT, GID), s.get(JAVA_LONG, RDEV), s.get(JAVA_LONG, SIZE),
                s.get(JAVA_LONG, BLKSIZE), s.get(JAVA_LONG, BLOCKS), s.get(JAVA_LONG, ATIM), s.get(JAVA_LONG, ATIM + 8),
                s.get(JAVA_LONG, MTIM), s.get(JAVA_LONG, MTIM + 8), s.get(JAVA_LONG, CTIM), s.get(JAVA_LONG, CTIM + 8));
    }

    /** The file type bits of {@link #mode}, one of the {@code FsAbi.S_IF*} values. */
    public int type() {
        return mode & FsAbi.S_IFMT;
    }

    public boolean isDirectory() {
        return type() == FsAbi.S_IFDIR;
    }

    public boolean isRegularFile() {
        return type() == FsAbi.S_IFREG;
    }

    public boolean isSymbolicLink() {
        return type() == FsAbi.S_IFLNK;
    }

    /** Whether {@code other} describes the same file (device and inode). */
    public boolean sameFile(FileStat other) {
        return device == other.device && inode == other.inode;
    }
}
