package dev.panamax.storage.qcow2;

import dev.panamax.storage.ImageFile;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The two-level refcount structure (refcount table -> refcount blocks) and cluster allocation on top
 * of it. Changes stay in memory until {@link #writeDirty()} (or a dirty block's eviction); the
 * owning {@link Qcow2Metadata} decides the order in which they reach the disk relative to L2/L1
 * updates: increments before references, decrements after (its rules 2, 3 and 6).
 */
final class Refcounts {
    private static final long ENTRY_RESERVED = 0x1ffL;

    private final ImageFile file;
    private final String name;
    private final int clusterBits, clusterSize;
    private final int refcountBits;
    private final long maxRefcount;
    /** Refcount entries per refcount block. */
    private final long perBlock;

    private long[] table;
    private long tableOffset;
    private int tableClusters;
    private int dirtyTableFrom = Integer.MAX_VALUE, dirtyTableTo = -1;
    /** The table was moved: the header must be rewritten once the new table is on disk. */
    private boolean tableMoved;

    /** A refcount block: {@link #perBlock} refcounts of {@link #refcountBits} each, big-endian. */
    static final class Block extends MetadataCache.Entry {
        final byte[] data;

        Block(long offset, byte[] data, boolean dirty) {
            super(offset, dirty);
            this.data = data;
        }
    }

    /**
     * The refcount blocks in memory. A dirty block may be written on its own whenever it is evicted:
     * refcounts in memory are never lower than what the metadata on disk references (see
     * {@link Qcow2Metadata}, rules 3 and 6), so writing one early can at worst leak clusters.
     */
    private final MetadataCache<Block> blocks;
    /** Cluster index from which allocation searches for free clusters. */
    private long freeCursor;
    /** Decrements that must wait until the references they drop are gone from disk. */
    private long[] pendingFrees = new long[64];
    private int pendingCount;
    private int ensureDepth;

    Refcounts(ImageFile file, int clusterBits, int refcountOrder, long tableOffset, int tableClusters, long[] table,
            long cacheBytes) {
        this.file = file;
        this.name = file.path().toString();
        this.clusterBits = clusterBits;
        this.clusterSize = 1 << clusterBits;
        this.refcountBits = 1 << refcountOrder;
        this.maxRefcount = refcountBits == 64 ? Long.MAX_VALUE : (1L << refcountBits) - 1;
        this.perBlock = (long) clusterSize * 8 / refcountBits;
        this.tableOffset = tableOffset;
        this.tableClusters = tableClusters;
        this.table = table;
        this.blocks = new MetadataCache<>("refcount block", clusterBits, cacheBytes, b -> {
            file.write(b.offset, ByteBuffer.wrap(b.data));
            b.dirty = false;
        });
    }

    /**
     * Sets up the refcount structure of a new image: table in cluster 1, one block in cluster 2,
     * counting clusters 0-2 (header, table, block). Written by {@link #writeDirty()}.
     */
    static Refcounts createFresh(ImageFile file, int clusterBits, int refcountOrder, long cacheBytes) throws IOException {
        int cs = 1 << clusterBits;
        long[] table = new long[cs / 8];
        Refcounts r = new Refcounts(file, clusterBits, refcountOrder, cs, 1, table, cacheBytes);
        r.setTableEntry(0, 2L * cs);
        r.blocks.put(new Block(2L * cs, new byte[cs], true));
        for (long c = 0; c < 3; c++) r.add(c, 1);
        r.freeCursor = 3;
        return r;
    }

    /** Reads the refcount table named by the header; table entries are validated when used. */
    static Refcounts load(ImageFile file, Qcow2Header h, long cacheBytes) throws IOException {
        int entries = h.refcountTableClusters << h.clusterBits >>> 3;
        ByteBuffer b = ByteBuffer.allocate(entries * 8);
        file.readFully(h.refcountTableOffset, b, "refcount table");
        b.flip();
        long[] table = new long[entries];
        b.asLongBuffer().get(table);
        return new Refcounts(file, h.clusterBits, h.refcountOrder, h.refcountTableOffset, h.refcountTableClusters, table,
                cacheBytes);
    }

    long maxRefcount() {
        return maxRefcount;
    }

    long perBlock() {
        return perBlock;
    }

    long tableOffset() {
        return tableOffset;
    }

    int tableClusters() {
        return tableClusters;
    }

    /** The offset of the refcount block covering block index {@code i}, validated, or 0 when none. */
    long blockOffset(long i) throws InvalidImageException {
        if (i >= table.length) return 0;
        long e = table[(int) i];
        if (e == 0) return 0;
        long off = e & ~ENTRY_RESERVED;
        if ((e & ENTRY_RESERVED) != 0 || off % clusterSize != 0) {
            throw new InvalidImageException(name + ": refcount table entry " + i + " (0x" + Long.toHexString(e)
                    + ") is not a cluster-aligned offset");
        }
        if (off < 0) { // bit 63: past the end of any file, and a negative position to the file I/O below
            throw new InvalidImageException(name + ": refcount table entry " + i + " (0x" + Long.toHexString(e)
                    + ") points past the end of the file");
        }
        return off;
    }

    private Block block(long i) throws IOException {
        long off = blockOffset(i);
        if (off == 0) return null;
        Block b = blocks.get(off);
        if (b != null) return b;
        if (off < clusterSize) {
            throw new InvalidImageException(name + ": refcount block " + i + " points at the header cluster");
        }
        byte[] data = new byte[clusterSize];
        file.readFully(off, ByteBuffer.wrap(data), "refcount block " + i);
        b = new Block(off, data, false);
        blocks.put(b);
        return b;
    }

    long get(long cluster) throws IOException {
        Block b = block(cluster / perBlock);
        return b == null ? 0 : read(b.data, (int) (cluster % perBlock), refcountBits);
    }

    /**
     * The first cluster in {@code [from, to)} whose refcount is not 0, else {@code to}: a block's bytes
     * scanned at a time, not a lookup per cluster (a hostile header's refcount block can hold 16 million
     * one-bit refcounts).
     *
     * @throws InvalidImageException for a block that cannot be read, as {@link #get} does
     */
    long nextNonZero(long from, long to) throws IOException {
        for (long c = from; c < to; ) {
            long blockIndex = c / perBlock;
            long blockEnd = Math.min(to, (blockIndex + 1) * perBlock);
            Block b = block(blockIndex);
            if (b != null) {
                int i = firstNonZero(b.data, (int) (c % perBlock), (int) ((blockEnd - 1) % perBlock), refcountBits);
                if (i >= 0) return blockIndex * perBlock + i;
            }
            c = blockEnd;
        }
        return to;
    }

    /** The first of entries {@code first} to {@code last} (inclusive) of {@code d} that is not 0, else -1. */
    static int firstNonZero(byte[] d, int first, int last, int refcountBits) {
        int byteTo = (int) (((long) last + 1) * refcountBits + 7) / 8;
        for (int at = (int) ((long) first * refcountBits / 8); at < byteTo; at++) {
            if (d[at] == 0) continue;
            // Entries whose first bit is in this byte, or that began before it and go on into it.
            for (long e = Math.max(first, (long) at * 8 / refcountBits); e <= last && e * refcountBits / 8 <= at; e++) {
                if (read(d, (int) e, refcountBits) != 0) return (int) e;
            }
        }
        return -1;
    }

    /** Refcount {@code i} of a refcount block of {@code refcountBits}-bit entries. */
    static long read(byte[] d, int i, int refcountBits) {
        switch (refcountBits) {
            case 1, 2, 4 -> {
                int bit = i * refcountBits;
                return (d[bit >>> 3] >>> (bit & 7)) & ((1 << refcountBits) - 1);
            }
            case 8 -> { return d[i] & 0xff; }
            case 16 -> { return ((d[2 * i] & 0xff) << 8) | (d[2 * i + 1] & 0xff); }
            default -> {
                int n = refcountBits / 8;
                long v = 0;
                for (int k = 0; k < n; k++) v = (v << 8) | (d[i * n + k] & 0xff);
                return v;
            }
        }
    }

    /** Sets refcount {@code i} of a refcount block of {@code refcountBits}-bit entries. */
    static void write(byte[] d, int i, long v, int refcountBits) {
        switch (refcountBits) {
            case 1, 2, 4 -> {
                int bit = i * refcountBits, mask = ((1 << refcountBits) - 1) << (bit & 7);
                d[bit >>> 3] = (byte) ((d[bit >>> 3] & ~mask) | ((int) v << (bit & 7)));
            }
            default -> {
                int n = refcountBits / 8;
                for (int k = n - 1; k >= 0; k--, v >>>= 8) d[i * n + k] = (byte) v;
            }
        }
    }

    /** Adds {@code delta} to the refcount of {@code cluster}, allocating refcount blocks as needed. */
    void add(long cluster, long delta) throws IOException {
        long old = get(cluster);
        long v = old + delta;
        if (v < 0) {
            throw new dev.panamax.storage.ImageCorruptException(name + ": refcount of cluster at offset 0x" + Long.toHexString(cluster << clusterBits)
                    + " would drop below zero; the image is corrupt, run 'panamax image check'");
        }
        if (v > maxRefcount || (delta > 0 && v < old)) {
            throw new InvalidImageException(name + ": refcount overflow for the cluster at offset 0x"
                    + Long.toHexString(cluster << clusterBits) + ": it already has " + old + " references, the most "
                    + refcountBits + "-bit refcounts can hold");
        }
        long bi = cluster / perBlock;
        ensureBlock(bi);
        Block b = block(bi);
        write(b.data, (int) (cluster % perBlock), v, refcountBits);
        b.dirty = true;
    }

    private void ensureBlock(long bi) throws IOException {
        if (blockOffset(bi) != 0) return;
        if (++ensureDepth > 64) {
            throw new IllegalStateException("refcount block allocation does not converge");
        }
        try {
            if (bi >= table.length) growTable(bi + 1);
            if (blockOffset(bi) != 0) return; // growing the table may have created it
            long c = findFree(1);
            setTableEntry((int) bi, c << clusterBits);
            blocks.put(new Block(c << clusterBits, new byte[clusterSize], true));
            add(c, 1); // the new block counts itself, possibly in another new block
        } finally {
            ensureDepth--;
        }
    }

    private void setTableEntry(int i, long value) {
        table[i] = value;
        dirtyTableFrom = Math.min(dirtyTableFrom, i);
        dirtyTableTo = Math.max(dirtyTableTo, i);
    }

    /** Moves the table to a larger run of clusters; the old one is freed once the header points away. */
    private void growTable(long minEntries) throws IOException {
        long entries = Math.max(minEntries + 1, table.length + table.length / 2 + 1);
        long clusters = (entries * 8 + clusterSize - 1) >> clusterBits;
        if (clusters * clusterSize > Qcow2Header.MAX_REFTABLE_BYTES) {
            throw new InvalidImageException(name + ": image file too large: its refcount table would exceed "
                    + (Qcow2Header.MAX_REFTABLE_BYTES >> 20) + " MiB");
        }
        long oldOffset = tableOffset;
        int oldClusters = tableClusters;
        long start = findFree(clusters);
        table = Arrays.copyOf(table, (int) (clusters << clusterBits >>> 3));
        tableOffset = start << clusterBits;
        tableClusters = (int) clusters;
        tableMoved = true;
        dirtyTableFrom = 0;
        dirtyTableTo = table.length - 1;
        for (long c = start; c < start + clusters; c++) add(c, 1);
        for (long c = 0; c < oldClusters; c++) free((oldOffset >> clusterBits) + c);
    }

    /** Finds {@code n} contiguous free clusters after the cursor and moves the cursor past them. */
    private long findFree(long n) throws IOException {
        long start = freeCursor, run = 0;
        for (long c = freeCursor; run < n; c++) {
            if (get(c) == 0) { // a cluster awaiting its deferred decrement still counts as used
                if (run++ == 0) start = c;
            } else {
                run = 0;
            }
        }
        freeCursor = start + n;
        return start;
    }

    /** Allocates {@code n} contiguous clusters with refcount 1; returns the byte offset of the first. */
    long allocate(long n) throws IOException {
        long start = findFree(n);
        for (long c = start; c < start + n; c++) add(c, 1);
        return start << clusterBits;
    }

    /** Queues a decrement, applied by {@link #applyPendingFrees()} after the reference left the disk. */
    void free(long cluster) {
        if (pendingCount == pendingFrees.length) pendingFrees = Arrays.copyOf(pendingFrees, pendingCount * 2);
        pendingFrees[pendingCount++] = cluster;
    }

    void freeBytes(long offset, long length) {
        for (long c = offset >> clusterBits; c <= (offset + length - 1) >> clusterBits; c++) free(c);
    }

    boolean hasPendingFrees() {
        return pendingCount > 0;
    }

    /** Applies the queued decrements; returns the clusters that became free, in ascending order. */
    long[] applyPendingFrees() throws IOException {
        long[] freed = new long[pendingCount];
        int n = 0;
        for (int i = 0; i < pendingCount; i++) {
            long c = pendingFrees[i];
            add(c, -1);
            if (get(c) == 0) {
                freeCursor = Math.min(freeCursor, c);
                freed[n++] = c;
            }
        }
        pendingCount = 0;
        freed = Arrays.copyOf(freed, n);
        Arrays.sort(freed);
        return freed;
    }

    boolean isDirty() {
        return dirtyTableTo >= 0 || blocks.anyDirty();
    }

    /** Writes dirty refcount blocks, then the table; returns true when the header must be rewritten. */
    boolean writeDirty() throws IOException {
        for (Block b : blocks.entries()) {
            if (b.dirty) {
                file.write(b.offset, ByteBuffer.wrap(b.data));
                b.dirty = false;
            }
        }
        if (dirtyTableTo >= 0) {
            ByteBuffer out = ByteBuffer.allocate((dirtyTableTo - dirtyTableFrom + 1) * 8);
            out.asLongBuffer().put(table, dirtyTableFrom, dirtyTableTo - dirtyTableFrom + 1);
            file.write(tableOffset + dirtyTableFrom * 8L, out);
            dirtyTableFrom = Integer.MAX_VALUE;
            dirtyTableTo = -1;
        }
        boolean moved = tableMoved;
        tableMoved = false;
        return moved;
    }

    MetadataCache<Block> cache() {
        return blocks;
    }

    /** Number of refcount block slots the table can hold. */
    int tableEntries() {
        return table.length;
    }
}
