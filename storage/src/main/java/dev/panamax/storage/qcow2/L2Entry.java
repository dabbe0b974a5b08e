package dev.panamax.storage.qcow2;

import dev.panamax.storage.ImageCorruptException;
import dev.panamax.storage.InvalidImageException;

/**
 * The bits of L2 table entries (and of the L1 entries that point at L2 tables) for one image's
 * cluster size and version: the one place that decodes and encodes them, and that validates the
 * values the file supplies before anything uses them as an offset.
 *
 * <pre>
 * standard L2 entry:   COPIED(63) | 0(62) | host cluster offset (bits 9..55) | ZERO(0, version 3)
 * compressed L2 entry: 0(63) | COMPRESSED(62) | extra 512-byte sectors | host byte offset (x bits)
 *                      where x = 62 - (clusterBits - 8)
 * L1 entry:            COPIED(63) | L2 table offset (bits 9..55)
 * </pre>
 *
 * COPIED means "refcount exactly one": the cluster may be written in place.
 *
 * <p>With extended L2 entries (incompatible feature bit 4) each entry is followed by a 64-bit
 * subcluster bitmap: the cluster is 32 subclusters, bit {@code x} says subcluster {@code x} is
 * allocated (its data is at the same place in the host cluster), bit {@code 32 + x} that it reads
 * as zeros; neither means it reads from the backing file. Both at once is corruption, and so is
 * any bit on a compressed entry, which has no subclusters. Bit 0 of the entry itself (ZERO) is
 * then reserved: the bitmap says what is zero.
 */
final class L2Entry {
    static final long COPIED = 1L << 63, COMPRESSED = 1L << 62, ZERO = 1;
    static final long OFFSET_MASK = 0x00fffffffffffe00L;
    static final long L1_RESERVED = 0x7f000000000001ffL, L2_RESERVED = 0x3f000000000001feL;
    static final int SUBCLUSTERS = 32;
    /** Extended L2 bitmap halves: subclusters allocated, subclusters reading as zeros. */
    static final long ALLOC_BITS = 0xffffffffL, ZERO_BITS = 0xffffffff00000000L;
    /** What one subcluster is, from an extended L2 bitmap. */
    static final int UNALLOCATED = 0, ZEROS = 1, DATA = 2;

    private final String name;
    private final int clusterSize;
    private final boolean zeroFlag;
    private final boolean extended;
    private final int subclusterBits;
    private final int compressedOffsetBits;

    L2Entry(String name, int clusterBits, int version, boolean extended) {
        this.name = name;
        this.clusterSize = 1 << clusterBits;
        this.zeroFlag = version >= 3 && !extended;
        this.extended = extended;
        this.subclusterBits = extended ? clusterBits - 5 : clusterBits;
        this.compressedOffsetBits = 62 - (clusterBits - 8);
    }

    /** Entries carry subcluster bitmaps. */
    boolean extended() {
        return extended;
    }

    /** log2 of the subcluster size: the cluster size without extended entries. */
    int subclusterBits() {
        return subclusterBits;
    }

    // ---------------------------------------------------------------- classification

    static boolean isCompressed(long e) {
        return (e & COMPRESSED) != 0;
    }

    /** A zero cluster: version 3 only; in version 2 the bit is reserved. */
    boolean isZero(long e) {
        return !isCompressed(e) && zeroFlag && (e & ZERO) != 0;
    }

    /** Reads from the backing file (or as zeros without one). */
    boolean isUnallocated(long e) {
        return !isCompressed(e) && !isZero(e) && hostOffset(e) == 0;
    }

    static boolean isCopied(long e) {
        return (e & COPIED) != 0;
    }

    /** The host offset of a standard entry (data cluster) or an L1 entry (L2 table), not validated. */
    static long hostOffset(long e) {
        return e & OFFSET_MASK;
    }

    /** Bits this image's format does not define in a standard entry (checked by {@link #dataOffset}). */
    boolean hasReservedBits(long e) {
        return (e & L2_RESERVED) != 0 || (!zeroFlag && (e & ZERO) != 0);
    }

    /** A cluster-aligned offset past the header cluster. */
    boolean isClusterOffset(long off) {
        return off % clusterSize == 0 && off >= clusterSize;
    }

    // ---------------------------------------------------------------- compressed entries

    /** Where the compressed data of {@code e} starts in the file (a byte offset). */
    long compressedOffset(long e) {
        return e & ((1L << compressedOffsetBits) - 1);
    }

    /** Bytes from {@link #compressedOffset} to the end of the last 512-byte sector holding the data. */
    long compressedLength(long e) {
        int x = compressedOffsetBits;
        long sectors = ((e >>> x) & ((1L << (62 - x)) - 1)) + 1;
        return sectors * 512 - (compressedOffset(e) & 511);
    }

    /** The entry for {@code length} bytes of compressed data at byte offset {@code offset}. */
    long compressed(long offset, int length) {
        long extraSectors = ((offset + length - 1) >> 9) - (offset >> 9);
        return COMPRESSED | (extraSectors << compressedOffsetBits) | offset;
    }

    // ---------------------------------------------------------------- validation of file-supplied entries

    /**
     * Validates a standard entry and returns its host offset (0 when none; for a zero cluster the
     * offset of its preallocated cluster, if any, unchecked).
     *
     * @param fileEnd the end of the file: data clusters must lie before it
     */
    long dataOffset(long e, long guestOffset, long fileEnd) throws InvalidImageException {
        if (hasReservedBits(e)) {
            throw new ImageCorruptException(name + ": L2 entry 0x" + Long.toHexString(e) + " for guest offset "
                    + guestOffset + " has reserved bits set; the image is corrupt");
        }
        long off = hostOffset(e);
        if (off == 0 || isZero(e)) return off;
        if (off % clusterSize != 0 || off < clusterSize || off >= fileEnd) {
            throw new ImageCorruptException(name + ": data cluster for guest offset " + guestOffset + " is at host offset 0x"
                    + Long.toHexString(off) + ", which is " + (off >= fileEnd ? "past the end of the file (" + fileEnd + " bytes)"
                    : "not a valid cluster") + "; the image is corrupt");
        }
        return off;
    }

    /** Validates the descriptor of a compressed cluster. */
    void checkCompressed(long e, long guestOffset, long fileEnd) throws InvalidImageException {
        long off = compressedOffset(e);
        if (isCopied(e) || off < clusterSize || off >= fileEnd || off > OFFSET_MASK) {
            throw new ImageCorruptException(name + ": compressed cluster for guest offset " + guestOffset
                    + " has an invalid descriptor 0x" + Long.toHexString(e) + "; the image is corrupt");
        }
    }

    // ---------------------------------------------------------------- extended L2 bitmaps

    /**
     * What subcluster {@code index} of a (checked) standard entry's bitmap is: {@link #UNALLOCATED},
     * {@link #ZEROS} or {@link #DATA}.
     */
    static int subcluster(long bitmap, int index) {
        if ((bitmap & (1L << index)) != 0) return DATA;
        return (bitmap & (1L << (32 + index))) != 0 ? ZEROS : UNALLOCATED;
    }

    /** The allocation bits of subclusters {@code first} to {@code last}, inclusive. */
    static long subclusterMask(int first, int last) {
        return (ALLOC_BITS >>> (31 - last + first)) << first;
    }

    /** What the bitmap of {@code e} is wrong about, or null when it is valid. */
    static String bitmapProblem(long e, long bitmap) {
        if (isCompressed(e)) return bitmap == 0 ? null : "compressed cluster has subcluster bits set";
        long both = bitmap & (bitmap >>> 32) & ALLOC_BITS;
        if (both != 0) return "subcluster " + Long.numberOfTrailingZeros(both) + " is marked both allocated and zero";
        if ((bitmap & ALLOC_BITS) != 0 && hostOffset(e) == 0) return "subclusters are allocated but no host cluster is";
        return null;
    }

    /** Validates the subcluster bitmap of an extended entry. */
    void checkBitmap(long e, long bitmap, long guestOffset) throws ImageCorruptException {
        String problem = bitmapProblem(e, bitmap);
        if (problem != null) {
            throw new ImageCorruptException(name + ": extended L2 entry for guest offset " + guestOffset + " (0x"
                    + Long.toHexString(e) + ", bitmap 0x" + Long.toHexString(bitmap) + "): " + problem
                    + "; the image is corrupt");
        }
    }

    /** Validates an L1 entry and returns the offset of its L2 table (0 when none). */
    long l2TableOffset(long l1Entry, long l1Index) throws InvalidImageException {
        long off = hostOffset(l1Entry);
        if ((l1Entry & L1_RESERVED) != 0 || off % clusterSize != 0 || (off != 0 && off < clusterSize)) {
            throw new ImageCorruptException(name + ": L1 entry " + l1Index + " (0x" + Long.toHexString(l1Entry)
                    + ") is not a valid L2 table offset; the image is corrupt");
        }
        return off;
    }
}
