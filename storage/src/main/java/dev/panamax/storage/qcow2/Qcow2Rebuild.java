package dev.panamax.storage.qcow2;

import dev.panamax.storage.ImageFile;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.zip.DataFormatException;

/**
 * Rebuilds the L1 table of a qcow2 image (version 2 or 3, no internal snapshots) whose L1 table or
 * refcount structures are destroyed, by scanning the file for L2 tables. The header must be intact:
 * it says where the tables are and how big.
 *
 * <p>The rule, step by step:
 * <ol>
 * <li>Every whole cluster of the file other than the header, the L1 table and the refcount table
 *     is a <em>candidate L2 table</em> when at least one entry is set and every set entry is one a
 *     valid L2 table could hold: no reserved bits; a data (or preallocated zero) cluster at a
 *     cluster-aligned offset past the header, inside the file, not on the header, L1 or refcount table
 *     nor on the candidate itself, and no data cluster twice; a compressed cluster starting inside
 *     the file, without the COPIED bit; with extended entries a valid subcluster bitmap.
 * <li>A surviving L1 entry that points at a candidate keeps it (its guest range is known). An L1
 *     entry that points anywhere else is dropped: its guest range is lost, and listed.
 * <li>Candidates that a kept table (or another candidate) references as a data cluster are data that
 *     happens to look like a table, not tables.
 * <li>The candidates left are <em>orphans</em>: nothing says which guest range they map (QEMU has no
 *     answer either). Only when exactly one orphan and exactly one empty L1 slot are left is the
 *     orphan placed there, where it is the only possibility (so an image up to one L2 range, 512
 *     MiB with 64 KiB clusters, whose whole L1 table was zeroed, is recovered whole). Otherwise
 *     orphans are listed with their host offsets and, when asked, written out as raw files holding
 *     the data they map, at the offsets they map it within an L2 range.
 * </ol>
 * The new L1 table is written where the old one was; the header is pointed at a fresh empty refcount
 * table at the end of the file and its corrupt and dirty bits cleared. The caller then rebuilds the
 * refcounts from the references ({@link Qcow2Check#repair}), which also sets the COPIED flags.
 *
 * <p>A guest data cluster whose contents happen to pass step 1 and that nothing references could be
 * taken for an orphan (a guest disk holding a qcow2 image, say); it is only ever reported or placed
 * in an otherwise empty slot, never allowed to displace a table an L1 entry names.
 */
public final class Qcow2Rebuild {
    /** A bit per host cluster; more would be more memory than a repair should take. */
    private static final long MAX_CLUSTERS = 1L << 31;
    /** The file is scanned in reads of this size. */
    private static final int SCAN_BYTES = 1 << 20;

    /** An L2 table no surviving L1 entry names. */
    public record Orphan(long hostOffset, long clusters, Path file) {}

    /**
     * What the rebuild found and did.
     *
     * @param tablesFound   candidate L2 tables the scan found (step 1), before step 3 took out data look-alikes
     * @param keptByL1      L2 tables surviving L1 entries point at
     * @param placed        orphans placed in the only slot left (0 or 1)
     * @param droppedL1     L1 entries that named no plausible L2 table, as sentences
     * @param clustersMapped guest clusters the rebuilt tables map (data, compressed or zero)
     * @param orphans       L2 tables left out, with the guest clusters each maps
     */
    public record Result(int tablesFound, int keptByL1, int placed, List<String> droppedL1, long clustersMapped,
            List<Orphan> orphans) {
        /**
         * Dropped L1 entries whose slot stays empty: an orphan is only ever placed in the one empty
         * slot, which is a dropped entry's when there is one.
         */
        public int droppedLeftEmpty() {
            return Math.max(0, droppedL1.size() - placed);
        }

        /** Whether the image now maps everything the scan found and every range the old L1 table named. */
        public boolean complete() {
            return orphans.isEmpty() && droppedLeftEmpty() == 0;
        }

        public long clustersOrphaned() {
            long n = 0;
            for (Orphan o : orphans) n += o.clusters();
            return n;
        }
    }

    private final ImageFile file;
    private final String name;
    private final Qcow2Header header;
    private final L2Entry entries;
    private final int clusterBits, clusterSize, l2Bits;
    private final long fileSize;
    private final BitSet fixed = new BitSet();

    private Qcow2Rebuild(ImageFile file, Qcow2Header header) throws IOException {
        this.file = file;
        this.name = file.path().toString();
        this.header = header;
        this.clusterBits = header.clusterBits;
        this.clusterSize = 1 << clusterBits;
        this.l2Bits = header.l2Bits();
        this.entries = new L2Entry(name, clusterBits, header.version, header.extendedL2());
        this.fileSize = file.size();
    }

    /**
     * Rebuilds {@code image} in place: call it on a copy. Orphaned tables are written to
     * {@code orphansDir} when it is not null.
     */
    public static Result rebuild(Path image, Path orphansDir) throws IOException {
        try (ImageFile file = ImageFile.open(image, true)) {
            Qcow2Header h;
            try {
                h = Qcow2Header.read(file);
            } catch (InvalidImageException e) {
                throw new InvalidImageException(e.getMessage() + "; rebuilding the tables needs an intact header", e);
            }
            if (h.nbSnapshots > 0) {
                throw new InvalidImageException(image + ": the image has " + h.nbSnapshots + " internal snapshots, whose L2"
                        + " tables a scan cannot tell from the active ones; rebuilding would lose them. Copy what can be"
                        + " read with 'panamax image convert --salvage' instead");
            }
            Qcow2Rebuild r = new Qcow2Rebuild(file, h);
            return r.run(orphansDir);
        }
    }

    private Result run(Path orphansDir) throws IOException {
        long clusters = fileSize >> clusterBits;
        if (clusters > MAX_CLUSTERS) {
            throw new InvalidImageException(name + ": image has " + clusters + " clusters, too many to scan");
        }
        markFixed(0, clusterSize);
        markFixed(header.l1TableOffset, 8L * header.l1Size);
        markFixed(header.refcountTableOffset, (long) header.refcountTableClusters << clusterBits);
        Map<Long, L2Table> candidates = scan(clusters);
        int found = candidates.size();

        // Step 2: surviving L1 entries.
        long[] oldL1 = new long[header.l1Size];
        if (header.l1Size > 0) {
            ByteBuffer b = ByteBuffer.allocate(8 * header.l1Size);
            file.readFully(header.l1TableOffset, b, "L1 table");
            b.flip().asLongBuffer().get(oldL1);
        }
        long[] newL1 = new long[header.l1Size];
        List<String> dropped = new ArrayList<>();
        Set<Long> kept = new HashSet<>();
        for (int i = 0; i < oldL1.length; i++) {
            long e = oldL1[i];
            if (e == 0) continue;
            long off = L2Entry.hostOffset(e);
            L2Table t = candidates.get(off);
            if ((e & L2Entry.L1_RESERVED) == 0 && t != null && !kept.contains(off) && fitsSlot(t, i)) {
                newL1[i] = off;
                kept.add(off);
            } else {
                dropped.add("L1 entry " + i + " (0x" + Long.toHexString(e) + ") names no L2 table (guest range "
                        + ((long) i << (l2Bits + clusterBits)) + "+" + (1L << (l2Bits + clusterBits)) + ")");
            }
        }

        // Step 3: what kept tables, then other candidates, use as data is not a table.
        Set<Long> dataOfKept = new HashSet<>();
        for (long off : kept) dataOfKept.addAll(dataClusters(candidates.get(off)));
        Map<Long, L2Table> rest = new TreeMap<>();
        for (var c : candidates.entrySet()) {
            if (!kept.contains(c.getKey()) && !dataOfKept.contains(c.getKey())) rest.put(c.getKey(), c.getValue());
        }
        Set<Long> dataOfRest = new HashSet<>();
        for (L2Table t : rest.values()) dataOfRest.addAll(dataClusters(t));
        rest.keySet().removeAll(dataOfRest);

        // Step 4: orphans; one orphan and one empty slot leave one possibility.
        int placed = 0;
        List<Integer> free = new ArrayList<>();
        for (int i = 0; i < newL1.length; i++) if (newL1[i] == 0) free.add(i);
        if (rest.size() == 1 && free.size() == 1) {
            var only = rest.entrySet().iterator().next();
            if (fitsSlot(only.getValue(), free.getFirst())) {
                newL1[free.getFirst()] = only.getKey();
                kept.add(only.getKey());
                rest.clear();
                placed = 1;
            }
        }
        long mapped = 0;
        for (long off : kept) mapped += setEntries(candidates.get(off));
        List<Orphan> orphans = new ArrayList<>();
        for (var o : rest.entrySet()) {
            Path out = orphansDir == null ? null : writeOrphan(o.getKey(), o.getValue(), orphansDir);
            orphans.add(new Orphan(o.getKey(), setEntries(o.getValue()), out));
        }

        writeTables(newL1);
        return new Result(found, kept.size() - placed, placed, List.copyOf(dropped), mapped, List.copyOf(orphans));
    }

    private void markFixed(long offset, long length) {
        if (length <= 0) return;
        fixed.set((int) (offset >> clusterBits), (int) ((offset + length - 1) >> clusterBits) + 1);
    }

    /** Step 1 over the whole file: every plausible L2 table, by host offset. */
    private Map<Long, L2Table> scan(long clusters) throws IOException {
        Map<Long, L2Table> found = new TreeMap<>();
        int step = Math.max(SCAN_BYTES, clusterSize);
        ByteBuffer buf = ByteBuffer.allocate(step);
        for (long c = 0; c < clusters; ) {
            long from = c << clusterBits;
            int n = (int) Math.min(step, (clusters - c) << clusterBits);
            buf.clear().limit(n);
            file.readFully(from, buf, "cluster");
            for (int k = 0; k < n >> clusterBits; k++, c++) {
                if (fixed.get((int) c)) continue;
                L2Table t = L2Table.decode(c << clusterBits, buf.duplicate().position(k << clusterBits)
                        .limit((k + 1) << clusterBits).slice(), entries.extended());
                if (plausible(t)) found.put(c << clusterBits, t);
            }
        }
        return found;
    }

    /** Step 1's rule for one cluster read as an L2 table. */
    private boolean plausible(L2Table t) {
        int set = 0;
        Set<Long> seen = new HashSet<>();
        for (int k = 0; k < t.entries.length; k++) {
            long e = t.entries[k], bitmap = t.bitmap(k);
            if (e == 0 && bitmap == 0) continue;
            if (entries.extended() && L2Entry.bitmapProblem(e, bitmap) != null) return false;
            set++;
            if (L2Entry.isCompressed(e)) {
                long off = entries.compressedOffset(e);
                if (L2Entry.isCopied(e) || off < clusterSize || off >= fileSize || fixed.get((int) (off >> clusterBits))) {
                    return false;
                }
                continue;
            }
            if (entries.hasReservedBits(e)) return false;
            long off = L2Entry.hostOffset(e);
            if (off == 0) continue; // a zero cluster (or, extended, one made of subclusters without data)
            if (off % clusterSize != 0 || off < clusterSize || off >= fileSize || off == t.offset
                    || fixed.get((int) (off >> clusterBits)) || !seen.add(off)) {
                return false;
            }
        }
        return set > 0;
    }

    /** Whether a table may map L1 slot {@code slot}: entries past the end of the disk are empty. */
    private boolean fitsSlot(L2Table t, int slot) {
        long first = (long) slot << l2Bits, diskClusters = (header.size + clusterSize - 1) >> clusterBits;
        for (int k = 0; k < t.entries.length; k++) {
            if (first + k >= diskClusters && (t.entries[k] != 0 || t.bitmap(k) != 0)) return false;
        }
        return true;
    }

    /** The host clusters a table uses as (uncompressed) data. */
    private static Set<Long> dataClusters(L2Table t) {
        Set<Long> out = new HashSet<>();
        for (long e : t.entries) if (!L2Entry.isCompressed(e) && L2Entry.hostOffset(e) != 0) out.add(L2Entry.hostOffset(e));
        return out;
    }

    private static long setEntries(L2Table t) {
        long n = 0;
        for (int k = 0; k < t.entries.length; k++) if (t.entries[k] != 0 || t.bitmap(k) != 0) n++;
        return n;
    }

    /**
     * An orphan's data as a raw file of one L2 range, {@code l2-at-0xOFFSET.raw}: entry {@code k}'s
     * cluster at {@code k} clusters in; what it does not map (or cannot be decompressed) is a hole.
     */
    private Path writeOrphan(long offset, L2Table t, Path dir) throws IOException {
        Files.createDirectories(dir);
        Path out = dir.resolve("l2-at-0x" + Long.toHexString(offset) + ".raw");
        Files.deleteIfExists(out);
        byte[] cluster = new byte[clusterSize], compressed = new byte[2 * clusterSize + 512];
        try (ImageFile f = ImageFile.create(out); ClusterCodec codec = ClusterCodec.of(header.compression)) {
            for (int k = 0; k < t.entries.length; k++) {
                long e = t.entries[k], bitmap = t.bitmap(k);
                long at = (long) k << clusterBits;
                if (L2Entry.isCompressed(e)) {
                    long off = entries.compressedOffset(e);
                    int len = (int) Math.min(Math.min(entries.compressedLength(e), compressed.length), fileSize - off);
                    file.readZeroPadded(off, ByteBuffer.wrap(compressed, 0, len));
                    try {
                        if (codec.decompress(compressed, len, cluster, clusterSize) == clusterSize) {
                            f.write(at, ByteBuffer.wrap(cluster));
                        }
                    } catch (DataFormatException damaged) {
                        // left a hole: the orphan's other clusters are still worth having
                    }
                } else if (L2Entry.hostOffset(e) != 0 && !entries.isZero(e)) {
                    file.readZeroPadded(L2Entry.hostOffset(e), ByteBuffer.wrap(cluster));
                    if (entries.extended()) { // only the allocated subclusters hold data
                        int sc = clusterSize / L2Entry.SUBCLUSTERS;
                        for (int s = 0; s < L2Entry.SUBCLUSTERS; s++) {
                            if (L2Entry.subcluster(bitmap, s) != L2Entry.DATA) java.util.Arrays.fill(cluster, s * sc, (s + 1) * sc, (byte) 0);
                        }
                    }
                    f.write(at, ByteBuffer.wrap(cluster));
                }
            }
            f.setSize((long) t.entries.length << clusterBits);
        }
        return out;
    }

    /**
     * Writes the new L1 table over the old one, a fresh empty refcount table at the end of the file,
     * and the header naming it with the corrupt and dirty bits cleared.
     */
    private void writeTables(long[] newL1) throws IOException {
        if (newL1.length > 0) file.write(header.l1TableOffset, Qcow2Metadata.longs(newL1, 0, newL1.length));
        long refcountTable = (fileSize + clusterSize - 1) >> clusterBits << clusterBits;
        file.write(refcountTable, ByteBuffer.allocate(clusterSize));
        file.sync();
        header.refcountTableOffset = refcountTable;
        header.refcountTableClusters = 1;
        header.incompatible &= ~(Qcow2Header.INCOMPAT_CORRUPT | Qcow2Header.INCOMPAT_DIRTY);
        file.write(0, header.encode());
        file.sync();
    }
}
