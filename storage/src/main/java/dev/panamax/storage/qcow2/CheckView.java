package dev.panamax.storage.qcow2;

import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * What {@link Qcow2Check} may see of an open image and do to it, and nothing more: the metadata it
 * walks (L1 and L2 tables of the active state and of every snapshot, the snapshot table), the stored
 * refcounts it compares with what it counted, and the three steps of a repair. The caller holds the
 * image's lock for as long as it uses the view.
 */
final class CheckView {
    private final Qcow2Metadata meta;
    private final Qcow2Snapshots snapshots;

    CheckView(Qcow2Metadata meta, Qcow2Snapshots snapshots) {
        this.meta = meta;
        this.snapshots = snapshots;
    }

    String name() {
        return meta.name;
    }

    int clusterBits() {
        return meta.clusterBits;
    }

    /** The decoder of L1 and L2 entries. */
    L2Entry entries() {
        return meta.entries;
    }

    boolean markedCorrupt() {
        return meta.markedCorrupt();
    }

    boolean markedDirty() {
        return meta.markedDirty();
    }

    /** The end of the file: its size, or further if our own writes went further. */
    long fileEnd() throws IOException {
        return Math.max(meta.file.size(), meta.fileEnd());
    }

    /** Writes cached metadata back, so that the file says what memory says. */
    void flush() throws IOException {
        meta.flush();
    }

    // ---------------------------------------------------------------- the metadata to walk

    long activeL1Offset() {
        return meta.header.l1TableOffset;
    }

    /** The active L1 table; read only. */
    long[] activeL1() {
        return meta.l1();
    }

    /** The entries of the L2 table at a validated offset, cached or read; read only. */
    long[] l2Table(long offset) throws IOException {
        return meta.loadL2(offset).entries;
    }

    /** The subcluster bitmaps of the L2 table at a validated offset, or null without extended entries; read only. */
    long[] l2Bitmaps(long offset) throws IOException {
        return meta.loadL2(offset).bitmaps;
    }

    List<Qcow2Snapshot> snapshots() {
        return snapshots.list();
    }

    long snapshotTableOffset() {
        return snapshots.tableOffset();
    }

    long snapshotTableBytes() {
        return snapshots.tableBytes();
    }

    long[] snapshotL1(Qcow2Snapshot s) throws IOException {
        return snapshots.readL1(s);
    }

    // ---------------------------------------------------------------- the stored refcounts, read only

    long refcount(long cluster) throws IOException {
        return meta.refcounts().get(cluster);
    }

    /** The first cluster in {@code [from, to)} whose stored refcount is not 0, else {@code to}. */
    long nextNonZeroRefcount(long from, long to) throws IOException {
        return meta.refcounts().nextNonZero(from, to);
    }

    int refcountOrder() {
        return meta.header.refcountOrder;
    }

    long refcountsPerBlock() {
        return meta.refcounts().perBlock();
    }

    long maxRefcount() {
        return meta.refcounts().maxRefcount();
    }

    long refcountTableOffset() {
        return meta.refcounts().tableOffset();
    }

    int refcountTableClusters() {
        return meta.refcounts().tableClusters();
    }

    /** Refcount block slots in the table. */
    int refcountTableEntries() {
        return meta.refcounts().tableEntries();
    }

    /** The validated offset of refcount block {@code index}, or 0 when it has none. */
    long refcountBlockOffset(long index) throws InvalidImageException {
        return meta.refcounts().blockOffset(index);
    }

    // ---------------------------------------------------------------- repair

    /** Writes clusters nothing references yet: a new refcount structure, past the end of the file. */
    void writeUnreferenced(long offset, ByteBuffer data) throws IOException {
        if (offset < fileEnd()) throw new IllegalArgumentException("0x" + Long.toHexString(offset) + " is inside the file");
        meta.file.write(offset, data);
    }

    /** Makes the structure written by {@link #writeUnreferenced} (ending at {@code end}) the image's. */
    void switchRefcounts(long tableOffset, int tableClusters, long end) throws IOException {
        meta.switchRefcounts(tableOffset, tableClusters, end);
    }

    void clearCorrupt() throws IOException {
        meta.clearCorrupt();
    }
}
