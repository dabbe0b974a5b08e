package dev.panamax.storage;

/** A run of the virtual disk with one allocation state. */
public record Extent(long offset, long length, Kind kind) {

    public enum Kind {
        /** Stored in this image. */
        DATA,
        /** Reads as zeros, decided by this image (no data stored, backing file not consulted). */
        ZERO,
        /** Not described by this image: reads from the backing file, or zeros without one. */
        UNALLOCATED
    }

    public Extent {
        if (length <= 0) throw new IllegalArgumentException("empty extent at " + offset);
    }

    public long end() {
        return offset + length;
    }

    /**
     * For a format that allocates in blocks of {@code blockSize} bytes: the extent from {@code
     * offset}, at most {@code maxLength} long, over the blocks that have the kind of {@code
     * offset}'s block, as {@code kindOfBlock} gives it by block number.
     */
    public static Extent ofBlocks(long offset, long maxLength, long blockSize, java.util.function.IntFunction<Kind> kindOfBlock) {
        long end = offset + maxLength;
        Kind kind = kindOfBlock.apply((int) (offset / blockSize));
        long pos = offset;
        while (pos < end && kindOfBlock.apply((int) (pos / blockSize)) == kind) {
            pos = (pos / blockSize + 1) * blockSize;
        }
        return new Extent(offset, Math.min(pos, end) - offset, kind);
    }
}
