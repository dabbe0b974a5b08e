package dev.panamax.storage.qcow2;

import dev.panamax.storage.CheckReport;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Consistency check and repair of a qcow2 image. Both start from the same walk: count, for every
 * host cluster, the references the metadata makes to it (header, L1/L2 tables and data of the active
 * state and of every snapshot, snapshot table, refcount structures). Check compares that with the
 * stored refcounts; repair writes a fresh refcount structure from it. The image is seen only through
 * a {@link CheckView}.
 */
public final class Qcow2Check {
    /** int per host cluster: more than this many clusters would need more memory than a check should. */
    private static final long MAX_CLUSTERS = 1L << 28;

    private final CheckView image;
    private final CheckReport report;
    private final L2Entry entries;
    private final int clusterBits, clusterSize, l2Bits;
    private final long fileClusters;
    private final int[] refs;

    private Qcow2Check(CheckView image, CheckReport report) throws IOException {
        this.image = image;
        this.report = report;
        this.entries = image.entries();
        this.clusterBits = image.clusterBits();
        this.clusterSize = 1 << clusterBits;
        this.l2Bits = clusterBits - (entries.extended() ? 4 : 3);
        long fileSize = image.fileEnd();
        this.fileClusters = (fileSize + clusterSize - 1) >> clusterBits;
        if (fileClusters > MAX_CLUSTERS) {
            throw new InvalidImageException(image.name() + ": image has " + fileClusters + " clusters, too many to check");
        }
        this.refs = new int[(int) fileClusters];
    }

    /** Checks an image (normally opened read-only). Structural damage is reported, never thrown. */
    public static CheckReport check(Qcow2Image image) throws IOException {
        synchronized (image) {
            return check(image.checkView());
        }
    }

    private static CheckReport check(CheckView image) throws IOException {
        image.flush();
        CheckReport report = new CheckReport();
        if (image.markedCorrupt()) report.note("the image is marked corrupt; it can only be opened read-only until repaired");
        if (image.markedDirty()) {
            report.note("the image was not closed cleanly while using lazy refcounts, so its refcounts are stale;"
                    + " repair, or opening it for writing, rebuilds them");
        }
        Qcow2Check walk = new Qcow2Check(image, report);
        walk.countReferences(true);
        walk.compareRefcounts();
        walk.checkCopiedFlags();
        return report;
    }

    /** What repair did: the state before, and a fresh check after. */
    public record RepairResult(CheckReport before, CheckReport after) {}

    /** Fixes leaks, wrong refcounts and COPIED flags by rebuilding the refcount structure. */
    public static RepairResult repair(Qcow2Image image) throws IOException {
        synchronized (image) {
            CheckView view = image.checkView();
            CheckReport before = check(view);
            rebuildRefcounts(view);
            CheckReport after = check(view);
            if (after.corruptions() == 0 && view.markedCorrupt()) view.clearCorrupt();
            return new RepairResult(before, after);
        }
    }

    /**
     * Replaces the refcount structure with one computed from the references: written past the current
     * end of the file, then switched to by one header write, so a crash leaves the old one in force
     * (rule 4 of {@link Qcow2Metadata}). The blocks are written one at a time, so memory stays small.
     */
    static void rebuildRefcounts(CheckView image) throws IOException {
        image.flush();
        Qcow2Check walk = new Qcow2Check(image, new CheckReport());
        walk.countReferences(false);
        int cs = walk.clusterSize, clusterBits = walk.clusterBits;
        long perBlock = image.refcountsPerBlock();
        long start = walk.fileClusters;
        long blocks = 0, tableClusters = 0;
        while (true) { // the new structure must also count itself
            long total = start + blocks + tableClusters;
            long b = (total + perBlock - 1) / perBlock;
            long t = (b * 8 + cs - 1) / cs;
            if (b == blocks && t == tableClusters) break;
            blocks = b;
            tableClusters = t;
        }
        if (tableClusters * cs > Qcow2Header.MAX_REFTABLE_BYTES) {
            throw new InvalidImageException(image.name() + ": image too large for a refcount table");
        }
        int refcountBits = 1 << image.refcountOrder();
        long max = image.maxRefcount();
        for (long c = 0; c < walk.fileClusters; c++) { // refuse before anything is written
            long v = walk.refs[(int) c];
            if (v > max) {
                throw new InvalidImageException(image.name() + ": cluster at offset 0x" + Long.toHexString(c << clusterBits)
                        + " has " + v + " references, more than " + refcountBits + "-bit refcounts can hold");
            }
        }
        long end = start + blocks + tableClusters; // the structure counts itself: clusters [start, end) hold it
        long[] table = new long[(int) (tableClusters << clusterBits >>> 3)];
        byte[] block = new byte[cs];
        for (int i = 0; i < blocks; i++) {
            Arrays.fill(block, (byte) 0);
            long first = i * perBlock;
            for (long c = first; c < first + perBlock; c++) {
                long v = c < walk.fileClusters ? walk.refs[(int) c] : c >= start && c < end ? 1 : 0;
                if (v != 0) Refcounts.write(block, (int) (c - first), v, refcountBits);
            }
            table[i] = (start + i) << clusterBits;
            image.writeUnreferenced(table[i], ByteBuffer.wrap(block));
        }
        long tableOffset = (start + blocks) << clusterBits;
        image.writeUnreferenced(tableOffset, Qcow2Metadata.longs(table, 0, table.length));
        image.switchRefcounts(tableOffset, (int) tableClusters, end << clusterBits);
    }

    private void ref(long offset, long length, String what) {
        if (length <= 0) return;
        for (long c = offset >> clusterBits; c <= (offset + length - 1) >> clusterBits; c++) {
            if (c >= fileClusters) {
                report.corruption(what + " at offset 0x" + Long.toHexString(offset) + " lies past the end of the file");
                return;
            }
            refs[(int) c]++;
        }
    }

    private void countReferences(boolean includeRefcountStructures) throws IOException {
        ref(0, clusterSize, "header");
        long[] l1 = image.activeL1();
        ref(image.activeL1Offset(), 8L * l1.length, "active L1 table");
        countTree(l1, "active state");
        long snapshotTableBytes = image.snapshotTableBytes(), snapshotsOffset = image.snapshotTableOffset();
        if (snapshotTableBytes > 0) { // the last entry's padding may lie past the end of the file
            long inFile = Math.min(snapshotTableBytes, (fileClusters << clusterBits) - snapshotsOffset);
            ref(snapshotsOffset, inFile, "snapshot table");
        }
        for (Qcow2Snapshot s : image.snapshots()) {
            ref(s.l1TableOffset(), 8L * s.l1Size(), "L1 table of snapshot " + s.id());
            long[] table;
            try {
                table = image.snapshotL1(s);
            } catch (InvalidImageException e) {
                report.corruption(e.getMessage());
                continue;
            }
            countTree(table, "snapshot " + s.id());
        }
        if (includeRefcountStructures) {
            ref(image.refcountTableOffset(), (long) image.refcountTableClusters() << clusterBits, "refcount table");
            for (int i = 0; i < image.refcountTableEntries(); i++) {
                long off;
                try {
                    off = image.refcountBlockOffset(i);
                } catch (InvalidImageException e) {
                    report.corruption(e.getMessage());
                    continue;
                }
                if (off != 0) ref(off, clusterSize, "refcount block " + i);
            }
        }
    }

    private void countTree(long[] l1, String owner) throws IOException {
        for (int i = 0; i < l1.length; i++) {
            long l2;
            try {
                l2 = entries.l2TableOffset(l1[i], i);
            } catch (InvalidImageException e) {
                report.corruption(owner + ": " + e.getMessage());
                continue;
            }
            if (l2 == 0) continue;
            if (l2 >> clusterBits >= fileClusters) {
                report.corruption(owner + ": L2 table " + i + " at offset 0x" + Long.toHexString(l2) + " lies past the end of the file");
                continue;
            }
            ref(l2, clusterSize, owner + ": L2 table " + i);
            long[] t, bitmaps;
            try {
                t = image.l2Table(l2);
                bitmaps = image.l2Bitmaps(l2);
            } catch (InvalidImageException e) {
                report.corruption(owner + ": " + e.getMessage());
                continue;
            }
            long guestBase = (long) i << (l2Bits + clusterBits);
            for (int k = 0; k < t.length; k++) {
                long e = t[k];
                long guest = guestBase + ((long) k << clusterBits);
                String bitmapProblem = bitmaps == null ? null : L2Entry.bitmapProblem(e, bitmaps[k]);
                if (bitmapProblem != null) {
                    report.corruption(owner + ": extended L2 entry for guest offset " + guest + " (bitmap 0x"
                            + Long.toHexString(bitmaps[k]) + "): " + bitmapProblem);
                }
                if (L2Entry.isCompressed(e)) {
                    long off = entries.compressedOffset(e);
                    if (off < clusterSize) {
                        report.corruption(owner + ": compressed cluster for guest offset " + guest + " points into the header");
                        continue;
                    }
                    ref(off, entries.compressedLength(e), owner + ": compressed data for guest offset " + guest);
                    continue;
                }
                if (entries.hasReservedBits(e)) {
                    report.corruption(owner + ": L2 entry for guest offset " + guest + " has reserved bits set (0x"
                            + Long.toHexString(e) + ")");
                    continue;
                }
                long off = L2Entry.hostOffset(e);
                if (off == 0) continue;
                if (!entries.isClusterOffset(off)) {
                    report.corruption(owner + ": data cluster for guest offset " + guest + " has invalid offset 0x"
                            + Long.toHexString(off));
                    continue;
                }
                ref(off, clusterSize, owner + ": data cluster for guest offset " + guest);
            }
        }
    }

    private void compareRefcounts() throws IOException {
        long perBlock = image.refcountsPerBlock();
        // Beyond the file only the block holding its last cluster is looked at: refcounts further out
        // could only come from a hostile table, and scanning them could take forever.
        long limit = Math.max(fileClusters, ((fileClusters + perBlock - 1) / perBlock) * perBlock);
        for (long c = 0; c < limit; c++) {
            long stored;
            try {
                if (c >= fileClusters) { // every refcount there should be 0: go to the next one that is not
                    c = image.nextNonZeroRefcount(c, limit);
                    if (c == limit) break;
                }
                stored = image.refcount(c);
            } catch (InvalidImageException e) {
                report.corruption(e.getMessage());
                c = (c / perBlock + 1) * perBlock - 1; // skip the unreadable block
                continue;
            }
            long expected = c < fileClusters ? refs[(int) c] : 0;
            if (stored == expected) continue;
            String where = "cluster at offset 0x" + Long.toHexString(c << clusterBits);
            if (expected > image.maxRefcount()) {
                report.corruption(where + " has " + expected + " references, more than its refcount can count");
            } else if (stored < expected) {
                report.corruption(where + " has refcount " + stored + " but " + expected + " references");
            } else {
                report.leak(where + " has refcount " + stored + " but " + expected + " references (leaked)");
            }
        }
    }

    /** Where the active tree's COPIED flags disagree with "refcount is exactly one". */
    private void checkCopiedFlags() throws IOException {
        long[] l1 = image.activeL1();
        for (int i = 0; i < l1.length; i++) {
            long l2;
            try {
                l2 = entries.l2TableOffset(l1[i], i);
            } catch (InvalidImageException e) {
                continue; // already reported
            }
            if (l2 == 0 || l2 >> clusterBits >= fileClusters) continue;
            if (L2Entry.isCopied(l1[i]) != (image.refcount(l2 >> clusterBits) == 1)) {
                report.corruption("L1 entry " + i + ": COPIED flag disagrees with the L2 table's refcount "
                        + image.refcount(l2 >> clusterBits));
            }
            long[] t;
            try {
                t = image.l2Table(l2);
            } catch (InvalidImageException e) {
                continue;
            }
            for (int k = 0; k < t.length; k++) {
                long e = t[k];
                long off = L2Entry.hostOffset(e);
                if (L2Entry.isCompressed(e) || !entries.isClusterOffset(off) || off >> clusterBits >= fileClusters) continue;
                long rc = image.refcount(off >> clusterBits);
                if (L2Entry.isCopied(e) != (rc == 1)) {
                    report.corruption("L2 entry for guest offset " + (((long) i << (l2Bits + clusterBits))
                            + ((long) k << clusterBits)) + ": COPIED flag disagrees with the data cluster's refcount " + rc);
                }
            }
        }
    }

}
