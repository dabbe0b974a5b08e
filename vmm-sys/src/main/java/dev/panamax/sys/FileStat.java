package dev.panamax.sys;

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

    /** struct stat in 8-byte words: every field is one, or half of one (st_mode, st_uid, st_gid). */
    private static final int WORDS = (int) (FsAbi.STAT.byteSize() / 8);

    /**
     * The struct in {@code s} (8-byte aligned), copied out in one bulk copy and decoded from a Java
     * array: a field read each through the segment cost several calls apiece in C1's code, which is all
     * the JVMs in the rig compile (virtio-fs answers a LOOKUP or GETATTR with one of these).
     */
    static FileStat read(MemorySegment s) {
        long[] w = new long[WORDS];
        MemorySegment.copy(s, JAVA_LONG, 0, w, 0, WORDS);
        return new FileStat(w[word(DEV)], w[word(INO)], w[word(NLINK)], half(w, MODE), half(w, UID), half(w, GID), w[word(RDEV)],
                w[word(SIZE)], w[word(BLKSIZE)], w[word(BLOCKS)], w[word(ATIM)], w[word(ATIM) + 1], w[word(MTIM)], w[word(MTIM) + 1],
                w[word(CTIM)], w[word(CTIM) + 1]);
    }

    private static int word(long offset) {
        return (int) (offset >>> 3);
    }

    /** The 4-byte field at {@code offset}: the low or high half of its word (x86-64 is little-endian). */
    private static int half(long[] w, long offset) {
        return (int) (w[word(offset)] >>> ((offset & 4) * 8));
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
