package dev.panamax.storage.qcow2;

import dev.panamax.storage.CheckReport;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;


/**
 * Consistency check and repair of a qcow2 image. Both start from the same walk: count, for every
 * host cluster, the references the metadata makes to it (header, L1/L2 tables and data of the active
 * state and of every snapshot, snapshot table, refcount structures). Check compares that with the
 * stored refcounts; repair writes a fresh refcount structure from it.
 */
public final class Qcow2Check {
    /** int per host cluster: more than this many clusters would need more memory than a check should. */
    private static final long MAX_CLUSTERS = 1L << 28;

    private final Qcow2Image image;
    private final CheckReport report;
    private final int clusterBits;
    private final long fileClusters;
    private final int[] refs;

    private Qcow2Check(Qcow2Image image, CheckReport report) throws IOException {
        this.image = image;
        this.report = report;
        this.clusterBits = image.clusterBits;
        long fileSize = Math.max(image.file.size(), image.fileEnd());
        this.fileClusters = (fileSize + image.clusterSize - 1) >> clusterBits;
        if (fileClusters > MAX_CLUSTERS) {
            throw new InvalidImageException(image.name + ": image has " + fileClusters + " clusters, too many to check");
        }
        this.refs = new int[(int) fileClusters];
    }

    /** Checks an image (normally opened read-only). Structural damage is reported, never thrown. */
    public static CheckReport check(Qcow2Image image) throws IOException {
        synchronized (image) {
            image.flushMetadata();
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
    }

    /** What repair did: the state before, and a fresh check after. */
    public record RepairResult(CheckReport before, CheckReport after) {}

    /** Fixes leaks, wrong refcounts and COPIED flags by rebuilding the refcount structure. */
    public static RepairResult repair(Qcow2Image image) throws IOException {
        synchronized (image) {
            CheckReport before = check(image);
            rebuildRefcounts(image, before);
            CheckReport after = check(image);
            if (after.corruptions() == 0 && image.markedCorrupt()) image.clearCorrupt();
            return new RepairResult(before, after);
        }
    }

    /**
     * Replaces the refcount structure with one computed from the references (written past the current
     * end of the file, then switched to by one header write, so a crash leaves the old one in force).
     */
    static void rebuildRefcounts(Qcow2Image image, CheckReport report) throws IOException {
        image.flushMetadata();
        Qcow2Check walk = new Qcow2Check(image, new CheckReport());
        walk.countReferences(false);
        int cs = image.clusterSize, clusterBits = image.clusterBits;
        long perBlock = image.refcounts.perBlock();
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
            throw new InvalidImageException(image.name + ": image too large for a refcount table");
        }
        long[] blockOffsets = new long[(int) blocks];
        for (int i = 0; i < blocks; i++) blockOffsets[i] = (start + i) << clusterBits;
        long tableOffset = (start + blocks) << clusterBits;
        Refcounts fresh = Refcounts.rebuilt(image.file, clusterBits, image.header.refcountOrder, tableOffset,
                (int) tableClusters, blockOffsets, Qcow2Image.CacheBudget.DEFAULT.refcountBlockBytes());
        long max = fresh.maxRefcount();
        for (long c = 0; c < walk.fileClusters; c++) {
            long v = walk.refs[(int) c];
            if (v > max) {
                throw new InvalidImageException(image.name + ": cluster at offset 0x" + Long.toHexString(c << clusterBits)
                        + " has " + v + " references, more than " + image.refcountBits() + "-bit refcounts can hold");
            }
            if (v != 0) fresh.setInExistingBlock(c, v);
        }
        for (long c = start; c < start + blocks + tableClusters; c++) fresh.setInExistingBlock(c, 1);
        fresh.writeDirty();
        image.noteFileEnd((start + blocks + tableClusters) << clusterBits);
        image.file.sync();
        image.header.refcountTableOffset = tableOffset;
        image.header.refcountTableClusters = (int) tableClusters;
        image.writeHeader();
        image.file.sync();
        image.refcounts = fresh;
        image.fixCopiedFlags();
        image.flushMetadata();
        image.file.sync();
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
        Qcow2Header h = image.header;
        ref(0, image.clusterSize, "header");
        ref(h.l1TableOffset, 8L * image.l1.length, "active L1 table");
        countTree(image.l1, "active state");
        if (image.snapshotTableBytes > 0) { // the last entry's padding may lie past the end of the file
            long inFile = Math.min(image.snapshotTableBytes, (fileClusters << clusterBits) - h.snapshotsOffset);
            ref(h.snapshotsOffset, inFile, "snapshot table");
        }
        for (Qcow2Snapshot s : image.snapshots) {
            ref(s.l1TableOffset(), 8L * s.l1Size(), "L1 table of snapshot " + s.id());
            long[] table;
            try {
                table = image.readL1(s);
            } catch (InvalidImageException e) {
                report.corruption(e.getMessage());
                continue;
            }
            countTree(table, "snapshot " + s.id());
        }
        if (includeRefcountStructures) {
            Refcounts r = image.refcounts;
            ref(r.tableOffset(), (long) r.tableClusters() << clusterBits, "refcount table");
            for (int i = 0; i < r.tableEntries(); i++) {
                long off;
                try {
                    off = r.blockOffset(i);
                } catch (InvalidImageException e) {
                    report.corruption(e.getMessage());
                    continue;
                }
                if (off != 0) ref(off, image.clusterSize, "refcount block " + i);
            }
        }
    }

    private void countTree(long[] l1, String owner) throws IOException {
        for (int i = 0; i < l1.length; i++) {
            long l2;
            try {
                l2 = image.l2Offset(l1[i], i);
            } catch (InvalidImageException e) {
                report.corruption(owner + ": " + e.getMessage());
                continue;
            }
            if (l2 == 0) continue;
            if (l2 >> clusterBits >= fileClusters) {
                report.corruption(owner + ": L2 table " + i + " at offset 0x" + Long.toHexString(l2) + " lies past the end of the file");
                continue;
            }
            ref(l2, image.clusterSize, owner + ": L2 table " + i);
            Qcow2Image.L2Table t;
            try {
                t = image.loadL2(l2);
            } catch (InvalidImageException e) {
                report.corruption(owner + ": " + e.getMessage());
                continue;
            }
            long guestBase = (long) i << (image.l2Bits + clusterBits);
            for (int k = 0; k < t.entries.length; k++) {
                long e = t.entries[k];
                long guest = guestBase + ((long) k << clusterBits);
                if (L2Entry.isCompressed(e)) {
                    long off = image.entries.compressedOffset(e);
                    if (off < image.clusterSize) {
                        report.corruption(owner + ": compressed cluster for guest offset " + guest + " points into the header");
                        continue;
                    }
                    ref(off, image.entries.compressedLength(e), owner + ": compressed data for guest offset " + guest);
                    continue;
                }
                if (L2Entry.hasReservedBits(e)) {
                    report.corruption(owner + ": L2 entry for guest offset " + guest + " has reserved bits set (0x"
                            + Long.toHexString(e) + ")");
                    continue;
                }
                long off = L2Entry.hostOffset(e);
                if (off == 0) continue;
                if (!image.entries.isClusterOffset(off)) {
                    report.corruption(owner + ": data cluster for guest offset " + guest + " has invalid offset 0x"
                            + Long.toHexString(off));
                    continue;
                }
                ref(off, image.clusterSize, owner + ": data cluster for guest offset " + guest);
            }
        }
    }

    private void compareRefcounts() throws IOException {
        Refcounts r = image.refcounts;
        long perBlock = r.perBlock();
        // Beyond the file only the block holding its last cluster is looked at: refcounts further out
        // could only come from a hostile table, and scanning them could take forever.
        long limit = Math.max(fileClusters, ((fileClusters + perBlock - 1) / perBlock) * perBlock);
        for (long c = 0; c < limit; c++) {
            long stored;
            try {
                stored = r.get(c);
            } catch (InvalidImageException e) {
                report.corruption(e.getMessage());
                c = (c / perBlock + 1) * perBlock - 1; // skip the unreadable block
                continue;
            }
            long expected = c < fileClusters ? refs[(int) c] : 0;
            if (stored == expected) continue;
            String where = "cluster at offset 0x" + Long.toHexString(c << clusterBits);
            if (expected > r.maxRefcount()) {
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
        long[] l1 = image.l1;
        for (int i = 0; i < l1.length; i++) {
            long l2;
            try {
                l2 = image.l2Offset(l1[i], i);
            } catch (InvalidImageException e) {
                continue; // already reported
            }
            if (l2 == 0 || l2 >> clusterBits >= fileClusters) continue;
            if (L2Entry.isCopied(l1[i]) != (image.refcounts.get(l2 >> clusterBits) == 1)) {
                report.corruption("L1 entry " + i + ": COPIED flag disagrees with the L2 table's refcount "
                        + image.refcounts.get(l2 >> clusterBits));
            }
            Qcow2Image.L2Table t;
            try {
                t = image.loadL2(l2);
            } catch (InvalidImageException e) {
                continue;
            }
            for (int k = 0; k < t.entries.length; k++) {
                long e = t.entries[k];
                long off = L2Entry.hostOffset(e);
                if (L2Entry.isCompressed(e) || !image.entries.isClusterOffset(off) || off >> clusterBits >= fileClusters) continue;
                long rc = image.refcounts.get(off >> clusterBits);
                if (L2Entry.isCopied(e) != (rc == 1)) {
                    report.corruption("L2 entry for guest offset " + (((long) i << (image.l2Bits + clusterBits))
                            + ((long) k << clusterBits)) + ": COPIED flag disagrees with the data cluster's refcount " + rc);
                }
            }
        }
    }

}
