package dev.panamax.storage.qcow2;

import dev.panamax.storage.ImageCorruptException;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The metadata of one open qcow2 image as it lives in memory (header, L1 table, cached L2 tables,
 * refcounts), cluster allocation on top of it, and the order in which all of it reaches the disk.
 * Not thread-safe: {@link Qcow2Image} serializes every use.
 *
 * <h2>Crash safety: the order of writes</h2>
 *
 * qcow2 has no journal. What keeps an image consistent across a crash or power loss at any moment
 * is the order in which metadata reaches the disk, with an fsync wherever a later write must not
 * overtake an earlier one. All of it is enforced in this class, except where noted. The invariant:
 * <em>every cluster that metadata on disk references has an on-disk refcount at least as high as
 * its references</em>. A crash therefore leaves at worst leaked clusters (refcount too high:
 * harmless, reclaimed by repair), never a cluster in use with a refcount too low, which a later
 * allocation would hand out a second time.
 *
 * <ol>
 * <li><b>Data before references.</b> A new cluster is written before any entry that points at it:
 *     guest data and compressed data by {@link Qcow2Image} before it sets the L2 entry (the entry
 *     reaches the disk only with a later {@link #flush}, after a sync); new and copied L2 tables by
 *     {@link #flush} before the L1 entries; new L1 and snapshot tables by {@link #relocate} before
 *     the header.
 * <li><b>Increments before references.</b> Allocation raises refcounts in memory at once.
 *     {@link #flush} writes the refcount blocks and table and syncs before it writes any L2 table,
 *     then writes the L2 tables and syncs before it writes the L1 table and header: an L2 table never
 *     reaches the disk before the refcounts of what it references, an L1 entry never before its L2
 *     table.
 * <li><b>Decrements after the references are gone.</b> Dropping a reference only queues the
 *     decrement ({@link Refcounts#free}); {@link #flush} applies the queue after the writes that
 *     removed the references are synced, then writes the lowered refcounts, and only then gives the
 *     space back to the file system. So refcounts in memory are never lower than what the disk
 *     references.
 * <li><b>Tables the header points at are replaced, not rewritten.</b> A new L1 table or snapshot
 *     table goes to fresh clusters whose refcounts are made durable first, is synced, the header is
 *     switched to it by one write and synced, and the old copy is freed by rule 3
 *     ({@link #relocate}). Repair writes a whole new refcount structure past the end of the file,
 *     syncs, and switches the header to it the same way ({@link #switchRefcounts}). The refcount
 *     table, when it grows, moves to fresh clusters too: it is written and synced before the header
 *     is pointed at it ({@link #writeRefcounts}). Two things are rewritten in place: L1
 *     entries (aligned 8-byte writes), and the whole L1 table when a snapshot is applied and its
 *     table fits in the clusters of the current one ({@link #adoptL1}).
 * <li><b>Lazy refcounts.</b> With that feature {@link #flush} does not write refcounts at all, so
 *     the invariant need not hold on disk; the header says so instead. The dirty bit is set in the
 *     header and synced before the first allocation
 *     ({@link #allocateClusters}), and cleared only on close, after the refcounts are written and
 *     synced ({@link #close}). An image found dirty has its refcounts rebuilt from the references
 *     before it is written to again ({@link Qcow2Image#open}).
 * <li><b>Eviction.</b> The caches are bounded ({@link MetadataCache}). A dirty L2 table leaves its
 *     cache only through a full {@link #flush}, so rules 2 and 3 hold for it. A dirty refcount
 *     block is written on its own when it is evicted ({@link Refcounts}): by rule 3 its contents
 *     are never lower than what the disk references, so writing it early can at worst leak.
 * <li><b>The corrupt bit.</b> Metadata found wrong while writing marks the image corrupt on disk
 *     (header write, sync) before the error is reported, so nothing writes to it again before it has
 *     been checked and repaired ({@link #markCorrupt}).
 * </ol>
 */
final class Qcow2Metadata {
    final ImageFile file;
    final String name;
    final Qcow2Header header;
    final int clusterBits, clusterSize, l2Bits;
    final L2Entry entries;
    final boolean readOnly;
    final boolean lazyRefcounts;
    private final long refcountCacheBytes;
    private boolean dirtyBitOnDisk;

    private long[] l1;
    private int l1DirtyFrom = Integer.MAX_VALUE, l1DirtyTo = -1;
    private boolean headerDirty;
    private final MetadataCache<L2Table> l2Cache;
    private Refcounts refcounts;
    /** End of the file as far as our own writes know; avoids an fstat per request. */
    private long fileEnd;
    /** Next free byte for packing compressed clusters, or 0 when a fresh cluster is needed. */
    private long compressedCursor;

    Qcow2Metadata(ImageFile file, Qcow2Header header, boolean readOnly, Qcow2Image.CacheBudget budget)
            throws IOException {
        this.file = file;
        this.name = file.path().toString();
        this.header = header;
        this.clusterBits = header.clusterBits;
        this.clusterSize = 1 << clusterBits;
        this.l2Bits = header.l2Bits();
        this.entries = new L2Entry(name, clusterBits, header.version, header.extendedL2());
        this.readOnly = readOnly;
        this.lazyRefcounts = (header.compatible & Qcow2Header.COMPAT_LAZY_REFCOUNTS) != 0;
        this.dirtyBitOnDisk = (header.incompatible & Qcow2Header.INCOMPAT_DIRTY) != 0;
        this.refcountCacheBytes = budget.refcountBlockBytes();
        this.fileEnd = file.size();
        // Rule 6: dirty L2 tables may only reach the disk in dependency order.
        this.l2Cache = new MetadataCache<>("L2 table", clusterBits, budget.l2TableBytes(), evicted -> flush());
        this.l1 = readLongs(header.l1TableOffset, header.l1Size, "L1 table");
        this.refcounts = Refcounts.load(file, header, refcountCacheBytes);
    }

    /** A table of big-endian 64-bit entries (an L1 table), validated to lie inside the file. */
    long[] readLongs(long offset, int count, String what) throws IOException {
        long[] table = new long[count];
        if (count > 0) {
            ByteBuffer b = ByteBuffer.allocate(count * 8);
            file.readFully(offset, b, what);
            b.flip().asLongBuffer().get(table);
        }
        return table;
    }

    static ByteBuffer longs(long[] values, int from, int count) {
        ByteBuffer b = ByteBuffer.allocate(count * 8);
        b.asLongBuffer().put(values, from, count);
        return b;
    }

    long clustersFor(long bytes) {
        return (bytes + clusterSize - 1) >> clusterBits;
    }

    long fileEnd() {
        return fileEnd;
    }

    /** Records that our own writes reached {@code end}. */
    void noteFileEnd(long end) {
        fileEnd = Math.max(fileEnd, end);
    }

    boolean markedCorrupt() {
        return (header.incompatible & Qcow2Header.INCOMPAT_CORRUPT) != 0;
    }

    boolean markedDirty() {
        return dirtyBitOnDisk;
    }

    Refcounts refcounts() {
        return refcounts;
    }

    MetadataCache<L2Table> l2Cache() {
        return l2Cache;
    }

    // ---------------------------------------------------------------- L1 and L2 tables

    /** The active L1 table; changed only through {@link #setL1} (and replaced by {@link #relocate}). */
    long[] l1() {
        return l1;
    }

    void setL1(int i, long value) {
        l1[i] = value;
        l1DirtyFrom = Math.min(l1DirtyFrom, i);
        l1DirtyTo = Math.max(l1DirtyTo, i);
    }

    /** An L2 table by host offset, from the cache or validated and read from the file. */
    L2Table loadL2(long offset) throws IOException {
        L2Table t = l2Cache.get(offset);
        if (t != null) return t;
        if (offset > fileEnd - clusterSize) {
            throw new ImageCorruptException(name + ": L2 table at offset 0x" + Long.toHexString(offset)
                    + " lies past the end of the file (" + fileEnd + " bytes); the image is truncated or corrupt");
        }
        ByteBuffer b = ByteBuffer.allocate(clusterSize);
        file.readFully(offset, b, "L2 table");
        t = L2Table.decode(offset, b.flip(), entries.extended());
        l2Cache.put(t);
        return t;
    }

    /**
     * The L2 table covering guest cluster group {@code l1Index}, or null when there is none and
     * {@code forWrite} is false. For writing, a missing table is allocated and a table shared with a
     * snapshot is copied, so the table returned may be changed (right away: see {@link MetadataCache}).
     */
    L2Table l2Table(long l1Index, boolean forWrite) throws IOException {
        int i = (int) l1Index;
        long e = l1[i];
        long off = entries.l2TableOffset(e, i);
        if (off == 0) {
            if (!forWrite) return null;
            long n = allocateClusters(1);
            L2Table t = L2Table.empty(n, 1 << l2Bits, entries.extended());
            l2Cache.put(t);
            setL1(i, n | L2Entry.COPIED);
            return t;
        }
        L2Table t = loadL2(off);
        if (forWrite && !L2Entry.isCopied(e)) {
            if (refcounts.get(off >> clusterBits) == 1) {
                setL1(i, off | L2Entry.COPIED);
            } else { // shared with a snapshot: copy on write
                long n = allocateClusters(1);
                long[] copy = t.entries.clone();
                for (int k = 0; k < copy.length; k++) copy[k] &= ~L2Entry.COPIED;
                L2Table c = new L2Table(n, copy, t.bitmaps == null ? null : t.bitmaps.clone(), true);
                l2Cache.put(c);
                setL1(i, n | L2Entry.COPIED);
                refcounts.free(off >> clusterBits);
                return c;
            }
        }
        return t;
    }

    /** Clears COPIED in every active L1 and L2 entry: everything is about to be shared with a snapshot. */
    void clearCopiedFlags() throws IOException {
        for (int i = 0; i < l1.length; i++) if (L2Entry.isCopied(l1[i])) setL1(i, l1[i] & ~L2Entry.COPIED);
        for (long l1Entry : l1) {
            long l2 = L2Entry.hostOffset(l1Entry);
            if (l2 == 0) continue;
            L2Table t = loadL2(l2);
            for (int k = 0; k < t.entries.length; k++) {
                if (L2Entry.isCopied(t.entries[k])) t.set(k, t.entries[k] & ~L2Entry.COPIED);
            }
        }
    }

    /** Sets the COPIED flag on active L1/L2 entries exactly where the refcount is one. */
    void fixCopiedFlags() throws IOException {
        for (int i = 0; i < l1.length; i++) {
            long l2 = entries.l2TableOffset(l1[i], i);
            if (l2 == 0) continue;
            long wanted = refcounts.get(l2 >> clusterBits) == 1 ? l2 | L2Entry.COPIED : l2;
            if (l1[i] != wanted) setL1(i, wanted);
            L2Table t = loadL2(l2);
            for (int k = 0; k < t.entries.length; k++) {
                long e = t.entries[k];
                if (L2Entry.isCompressed(e) || L2Entry.hostOffset(e) == 0) continue;
                long off = L2Entry.hostOffset(e);
                long want = refcounts.get(off >> clusterBits) == 1 ? e | L2Entry.COPIED : e & ~L2Entry.COPIED;
                if (want != e) t.set(k, want);
            }
        }
    }

    // ---------------------------------------------------------------- allocation and references

    /** Allocates {@code n} contiguous clusters (refcount 1); returns the byte offset of the first. */
    long allocateClusters(long n) throws IOException {
        markDirtyForLazyRefcounts();
        return refcounts.allocate(n);
    }

    /** Sub-cluster allocation for compressed data: each user of a host cluster holds one reference. */
    long allocateBytes(int n) throws IOException {
        if (compressedCursor != 0) {
            long clusterEnd = (compressedCursor | (clusterSize - 1)) + 1;
            if (compressedCursor + n <= clusterEnd) {
                long off = compressedCursor;
                refcounts.add(off >> clusterBits, 1);
                compressedCursor = off + n == clusterEnd ? 0 : off + n;
                return off;
            }
        }
        long start = allocateClusters((n + clusterSize - 1) >> clusterBits);
        compressedCursor = (start + n) % clusterSize == 0 ? 0 : start + n;
        return start;
    }

    long refcount(long cluster) throws IOException {
        return refcounts.get(cluster);
    }

    /** Queues the refcount decrements for the host clusters an L2 entry referenced (rule 3). */
    void release(long e) {
        if (L2Entry.isCompressed(e)) {
            refcounts.freeBytes(entries.compressedOffset(e), entries.compressedLength(e));
        } else if (L2Entry.hostOffset(e) != 0) {
            refcounts.free(L2Entry.hostOffset(e) >> clusterBits);
        }
    }

    /** Queues the decrements for the clusters of a byte range (rule 3). */
    void releaseBytes(long offset, long length) {
        refcounts.freeBytes(offset, length);
    }

    /**
     * Applies {@code delta} per reference to every L2 table and cluster reachable from {@code table};
     * decrements are queued (rule 3).
     */
    void adjustTreeRefcounts(long[] table, long delta) throws IOException {
        boolean deferred = delta < 0;
        for (int i = 0; i < table.length; i++) {
            long l2 = entries.l2TableOffset(table[i], i);
            if (l2 == 0) continue;
            L2Table t = loadL2(l2);
            for (long e : t.entries) {
                if (L2Entry.isCompressed(e)) {
                    long off = entries.compressedOffset(e), len = entries.compressedLength(e);
                    for (long c = off >> clusterBits; c <= (off + len - 1) >> clusterBits; c++) adjust(c, delta, deferred);
                } else if (L2Entry.hostOffset(e) != 0) {
                    adjust(L2Entry.hostOffset(e) >> clusterBits, delta, deferred);
                }
            }
            adjust(l2 >> clusterBits, delta, deferred);
        }
    }

    private void adjust(long cluster, long delta, boolean deferred) throws IOException {
        if (deferred) refcounts.free(cluster);
        else refcounts.add(cluster, delta);
    }

    // ---------------------------------------------------------------- writing back (rules 2, 3, 6)

    /** Writes cached metadata back in dependency order (rules 2 and 3); nothing for a read-only image. */
    void flush() throws IOException {
        if (readOnly) return;
        if (!lazyRefcounts && refcounts.isDirty()) { // rule 2: increments first
            writeRefcounts();
            file.sync();
        }
        boolean wrote = false; // rule 2: then the L2 tables
        for (L2Table t : l2Cache.entries()) {
            if (t.dirty) {
                file.write(t.offset, t.encode());
                fileEnd = Math.max(fileEnd, t.offset + clusterSize);
                t.dirty = false;
                wrote = true;
            }
        }
        if (wrote) file.sync();
        if (l1DirtyTo >= 0 || headerDirty) { // rule 2: then the L1 table and header
            if (l1DirtyTo >= 0) {
                file.write(header.l1TableOffset + 8L * l1DirtyFrom, longs(l1, l1DirtyFrom, l1DirtyTo - l1DirtyFrom + 1));
                l1DirtyFrom = Integer.MAX_VALUE;
                l1DirtyTo = -1;
            }
            if (headerDirty) writeHeader();
            file.sync();
        }
        if (refcounts.hasPendingFrees()) { // rule 3: decrements once the references are gone
            long[] freed = refcounts.applyPendingFrees();
            compressedCursor = 0; // its cluster may just have been freed and must not be written to again
            if (!lazyRefcounts) writeRefcounts();
            punchHoles(freed);
        }
    }

    /**
     * Gives the space of freed clusters back to the host file system (what makes a guest's discard
     * useful). Safe: nothing on disk references them any more, the metadata changes came first.
     */
    private void punchHoles(long[] clusters) throws IOException {
        for (int i = 0; i < clusters.length; ) {
            int j = i + 1;
            while (j < clusters.length && clusters[j] == clusters[j - 1] + 1) j++;
            long start = clusters[i] << clusterBits;
            if (start < fileEnd) file.zero(start, Math.min((long) (j - i) << clusterBits, fileEnd - start));
            i = j;
        }
    }

    /** Writes dirty refcount blocks and the table; a table that moved is then named in the header (rule 4). */
    private void writeRefcounts() throws IOException {
        if (refcounts.writeDirty()) { // the table moved: point the header at it, now that it is written
            file.sync(); // the new table is durable before the header names it
            header.refcountTableOffset = refcounts.tableOffset();
            header.refcountTableClusters = refcounts.tableClusters();
            writeHeader();
        }
        fileEnd = Math.max(fileEnd, file.size());
    }

    void writeHeader() throws IOException {
        ByteBuffer b = header.encode();
        file.write(0, b);
        headerDirty = false;
    }

    /** What closing a writable image writes: everything, and with lazy refcounts the refcounts (rule 5). */
    void close() throws IOException {
        if (readOnly) return;
        flush();
        if (lazyRefcounts) {
            writeRefcounts();
            file.sync();
            if (dirtyBitOnDisk) clearDirtyBit();
        }
        file.sync();
    }

    // ---------------------------------------------------------------- header-rooted tables (rule 4)

    /** How the in-memory header (and state) changes to name a relocated table at {@code offset}. */
    @FunctionalInterface
    interface Switch {
        void to(long offset);
    }

    /**
     * Replaces a table the header points at (rule 4): writes {@code contents} to fresh clusters,
     * syncs, lets {@code change} point the in-memory header at them, writes the header, syncs, and
     * frees the old copy ({@code oldBytes} at {@code oldOffset}) once nothing on disk names it.
     *
     * @return where the new copy lives (0 when {@code contents} is empty)
     */
    long relocate(ByteBuffer contents, long oldOffset, long oldBytes, Switch change) throws IOException {
        long bytes = contents.remaining();
        long offset = bytes == 0 ? 0 : allocateClusters(clustersFor(bytes));
        flush(); // the new clusters' refcounts are durable before anything names them
        if (bytes > 0) {
            file.write(offset, contents);
            fileEnd = Math.max(fileEnd, offset + bytes);
            file.sync();
        }
        change.to(offset);
        writeHeader();
        file.sync();
        if (oldBytes > 0) refcounts.freeBytes(oldOffset, oldBytes);
        flush();
        return offset;
    }

    /** Puts a new active L1 table in fresh clusters and points the header at it; the old one is freed after. */
    void replaceL1(long[] newL1) throws IOException {
        relocate(longs(newL1, 0, newL1.length), header.l1TableOffset, 8L * l1.length, offset -> {
            l1 = newL1;
            l1DirtyFrom = Integer.MAX_VALUE;
            l1DirtyTo = -1;
            header.l1TableOffset = offset;
            header.l1Size = newL1.length;
        });
    }

    /**
     * Makes {@code newL1} the active L1 table of a disk of {@code diskSize} bytes: rewritten in place
     * when it fits the clusters of the current one (its stale tail beyond l1Size is ignored by
     * readers), else relocated. The caller frees what the old table referenced.
     */
    void adoptL1(long[] newL1, long diskSize) throws IOException {
        if (clustersFor(8L * newL1.length) <= clustersFor(8L * l1.length) && header.l1TableOffset != 0) {
            l1 = newL1;
            l1DirtyFrom = 0;
            l1DirtyTo = newL1.length - 1;
            header.l1Size = newL1.length;
            header.size = diskSize;
            headerDirty = true;
            if (newL1.length == 0) l1DirtyTo = -1;
        } else {
            header.size = diskSize;
            replaceL1(newL1);
        }
    }

    /**
     * Switches to a refcount structure that repair wrote past the end of the file (rule 4): everything
     * up to {@code end} is written; it is synced, the header switched and synced, and the structure
     * read back as the image's refcounts. COPIED flags are then made to agree with it.
     */
    void switchRefcounts(long tableOffset, int tableClusters, long end) throws IOException {
        noteFileEnd(end);
        file.sync();
        header.refcountTableOffset = tableOffset;
        header.refcountTableClusters = tableClusters;
        writeHeader();
        file.sync();
        refcounts = Refcounts.load(file, header, refcountCacheBytes);
        fixCopiedFlags();
        flush();
        file.sync();
    }

    // ---------------------------------------------------------------- header flags (rules 5, 7)

    /** With lazy refcounts the dirty bit must be on disk before refcounts start to lag behind (rule 5). */
    private void markDirtyForLazyRefcounts() throws IOException {
        if (lazyRefcounts && !dirtyBitOnDisk) {
            header.incompatible |= Qcow2Header.INCOMPAT_DIRTY;
            writeHeader();
            file.sync();
            dirtyBitOnDisk = true;
        }
    }

    void clearDirtyBit() throws IOException {
        header.incompatible &= ~Qcow2Header.INCOMPAT_DIRTY;
        writeHeader();
        file.sync();
        dirtyBitOnDisk = false;
    }

    /**
     * Marks the image corrupt on disk so that no program writes to it until it is repaired (QEMU
     * honours the same bit); returns the exception to throw, saying so (rule 7).
     */
    ImageCorruptException markCorrupt(ImageCorruptException e) {
        if (readOnly || markedCorrupt()) return e;
        try {
            header.incompatible |= Qcow2Header.INCOMPAT_CORRUPT;
            writeHeader();
            file.sync();
        } catch (IOException suppressed) {
            e.addSuppressed(suppressed);
            return e;
        }
        ImageCorruptException marked = new ImageCorruptException(e.getMessage()
                + "; the image is now marked corrupt: check and repair it before writing to it again");
        marked.initCause(e);
        return marked;
    }

    void clearCorrupt() throws IOException {
        header.incompatible &= ~Qcow2Header.INCOMPAT_CORRUPT;
        writeHeader();
        file.sync();
    }

    /** Records a different backing file (or none) in the header, after everything else is written. */
    void setBackingFile(String backingFile, ImageFormat format) throws IOException {
        String oldFile = header.backingFile, oldFormat = header.backingFormat;
        header.backingFile = backingFile;
        header.backingFormat = backingFile == null || format == null ? null : format.id();
        try {
            header.encode();
        } catch (InvalidImageException e) {
            header.backingFile = oldFile;
            header.backingFormat = oldFormat;
            throw e;
        }
        flush();
        writeHeader();
        file.sync();
    }
}
