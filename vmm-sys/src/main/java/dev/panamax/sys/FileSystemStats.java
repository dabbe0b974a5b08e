package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.MemorySegment;

/** What {@code fstatvfs(3)} says of the file system that holds a file. */
public record FileSystemStats(long blockSize, long fragmentSize, long blocks, long freeBlocks, long availableBlocks,
        long files, long freeFiles, long nameMax) {

    static FileSystemStats read(MemorySegment s) {
        return new FileSystemStats(get(s, "f_bsize"), get(s, "f_frsize"), get(s, "f_blocks"), get(s, "f_bfree"),
                get(s, "f_bavail"), get(s, "f_files"), get(s, "f_ffree"), get(s, "f_namemax"));
    }

    private static long get(MemorySegment s, String field) {
        return s.get(JAVA_LONG, FsAbi.offset(FsAbi.STATVFS, field));
    }
}
