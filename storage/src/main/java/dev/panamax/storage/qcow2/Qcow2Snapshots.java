package dev.panamax.storage.qcow2;

import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The internal snapshots of an image: the snapshot table (read, validated, rewritten) and creating,
 * reverting to and deleting snapshots. A snapshot is a copy of the active L1 table whose L2 tables and
 * clusters gain one reference each; writes then copy shared clusters instead of changing them.
 * Every change follows the write ordering of {@link Qcow2Metadata}. Not thread-safe: the image
 * serializes its requests.
 */
final class Qcow2Snapshots {
    static final int MAX_EXTRA = 1024;
    static final long MAX_TABLE_BYTES = 64L << 20;

    private final Qcow2Metadata meta;
    private List<Qcow2Snapshot> list;
    /** Bytes of the table on disk (the last entry's padding included). */
    private long tableBytes;

    private Qcow2Snapshots(Qcow2Metadata meta, List<Qcow2Snapshot> list, long tableBytes) {
        this.meta = meta;
        this.list = list;
        this.tableBytes = tableBytes;
    }

    /** Reads and validates the snapshot table the header names. */
    static Qcow2Snapshots read(Qcow2Metadata meta) throws IOException {
        long[] tableBytes = new long[1];
        List<Qcow2Snapshot> list = readTable(meta.file, meta.header, tableBytes);
        return new Qcow2Snapshots(meta, list, tableBytes[0]);
    }

    List<Qcow2Snapshot> list() {
        return List.copyOf(list);
    }

    long tableOffset() {
        return meta.header.snapshotsOffset;
    }

    long tableBytes() {
        return tableBytes;
    }

    /** The L1 table frozen in a snapshot. */
    long[] readL1(Qcow2Snapshot s) throws IOException {
        return meta.readLongs(s.l1TableOffset(), s.l1Size(), "L1 table of snapshot " + s.id());
    }

    private Qcow2Snapshot find(String idOrName) throws InvalidImageException {
        for (Qcow2Snapshot s : list) if (s.id().equals(idOrName)) return s;
        for (Qcow2Snapshot s : list) if (s.name().equals(idOrName)) return s;
        throw new InvalidImageException(meta.name + ": no snapshot with ID or name '" + idOrName + "'");
    }

    Qcow2Snapshot create(String snapshotName) throws IOException {
        if (snapshotName.isEmpty()) throw new ImageRequestException("snapshot name must not be empty");
        for (Qcow2Snapshot s : list) {
            if (s.name().equals(snapshotName)) {
                throw new ImageRequestException("a snapshot named '" + snapshotName + "' already exists");
            }
        }
        if (list.size() >= Qcow2Header.MAX_SNAPSHOTS) throw new InvalidImageException(meta.name + ": too many snapshots");
        meta.flush();
        // Increments first: every L2 table and cluster gains the snapshot's reference.
        long[] l1 = meta.l1();
        meta.adjustTreeRefcounts(l1, 1);
        meta.clearCopiedFlags();
        long l1Copy = l1.length == 0 ? 0 : meta.allocateClusters(meta.clustersFor(8L * l1.length));
        if (l1.length > 0) {
            meta.file.write(l1Copy, Qcow2Metadata.longs(l1, 0, l1.length));
            meta.noteFileEnd(l1Copy + 8L * l1.length);
        }
        meta.flush();
        long max = 0;
        for (Qcow2Snapshot s : list) {
            try {
                max = Math.max(max, Long.parseLong(s.id()));
            } catch (NumberFormatException ignored) {
                // IDs written by other tools need not be numbers
            }
        }
        Instant now = Instant.now();
        long diskSize = meta.header.size;
        Qcow2Snapshot snap = new Qcow2Snapshot(Long.toString(max + 1), snapshotName, l1Copy, l1.length,
                now.getEpochSecond(), now.getNano(), 0, 0, Qcow2Snapshot.extraFor(diskSize), diskSize);
        List<Qcow2Snapshot> updated = new ArrayList<>(list);
        updated.add(snap);
        writeTable(updated);
        return snap;
    }

    void delete(String idOrName) throws IOException {
        Qcow2Snapshot s = find(idOrName);
        long[] table = readL1(s);
        meta.flush();
        List<Qcow2Snapshot> updated = new ArrayList<>(list);
        updated.remove(s);
        writeTable(updated);
        meta.adjustTreeRefcounts(table, -1);
        if (s.l1Size() > 0) meta.releaseBytes(s.l1TableOffset(), 8L * s.l1Size());
        meta.flush();
        meta.fixCopiedFlags(); // clusters the snapshot shared may now be exclusively ours again
        meta.flush();
    }

    /** Reverts the disk to a snapshot: its L1 table becomes the active one (the snapshot stays). */
    void apply(String idOrName) throws IOException {
        Qcow2Snapshot s = find(idOrName);
        long[] table = readL1(s);
        meta.flush();
        meta.adjustTreeRefcounts(table, 1);
        meta.flush();
        long[] old = meta.l1();
        long[] fresh = Arrays.copyOf(table, table.length);
        for (int i = 0; i < fresh.length; i++) fresh[i] &= ~L2Entry.COPIED;
        meta.adoptL1(fresh, s.diskSize());
        meta.adjustTreeRefcounts(old, -1);
        meta.flush();
        meta.fixCopiedFlags();
        meta.flush();
    }

    /** Writes a new snapshot table, switches the header to it, frees the old table (rule 4). */
    private void writeTable(List<Qcow2Snapshot> updated) throws IOException {
        ByteBuffer table = encode(updated);
        long bytes = table.remaining();
        meta.relocate(table, meta.header.snapshotsOffset, tableBytes, offset -> {
            meta.header.snapshotsOffset = offset;
            meta.header.nbSnapshots = updated.size();
            list = updated;
            tableBytes = bytes;
        });
    }

    static ByteBuffer encode(List<Qcow2Snapshot> snapshots) {
        int total = 0;
        for (Qcow2Snapshot s : snapshots) total += s.encodedSize();
        ByteBuffer b = ByteBuffer.allocate(total);
        for (Qcow2Snapshot s : snapshots) {
            int start = b.position();
            byte[] id = s.id().getBytes(StandardCharsets.UTF_8), name = s.name().getBytes(StandardCharsets.UTF_8);
            b.putLong(s.l1TableOffset()).putInt(s.l1Size()).putShort((short) id.length).putShort((short) name.length)
                    .putInt((int) s.dateSeconds()).putInt(s.dateNanos()).putLong(s.vmClockNanos()).putInt(s.vmStateSize())
                    .putInt(s.extraData().length).put(s.extraData()).put(id).put(name);
            b.position(start + s.encodedSize());
        }
        b.flip();
        return b;
    }

    /** Reads and validates the header's {@code nbSnapshots} entries; returns them and the table's byte size. */
    private static List<Qcow2Snapshot> readTable(ImageFile file, Qcow2Header h, long[] tableBytes) throws IOException {
        String name = file.path().toString();
        List<Qcow2Snapshot> list = new ArrayList<>();
        tableBytes[0] = 0;
        if (h.nbSnapshots == 0) return list;
        long fileSize = file.size();
        long maxBytes = Math.min(MAX_TABLE_BYTES, fileSize - h.snapshotsOffset);
        long pos = h.snapshotsOffset;
        ByteBuffer fixed = ByteBuffer.allocate(Qcow2Snapshot.FIXED);
        for (int i = 0; i < h.nbSnapshots; i++) {
            if (pos - h.snapshotsOffset + Qcow2Snapshot.FIXED > maxBytes) {
                throw new InvalidImageException(name + ": snapshot table (" + h.nbSnapshots
                        + " entries) runs past the end of the file or past " + (MAX_TABLE_BYTES >> 20) + " MiB");
            }
            fixed.clear();
            file.readFully(pos, fixed, "snapshot table entry " + i);
            long l1Offset = fixed.getLong(0);
            int l1Size = fixed.getInt(8);
            int idLen = fixed.getShort(12) & 0xffff, nameLen = fixed.getShort(14) & 0xffff;
            int extra = fixed.getInt(36);
            if (extra < 0 || extra > MAX_EXTRA) {
                throw new InvalidImageException(name + ": snapshot " + i + " has " + Integer.toUnsignedString(extra)
                        + " bytes of extra data (at most " + MAX_EXTRA + " allowed)");
            }
            int entrySize = (Qcow2Snapshot.FIXED + extra + idLen + nameLen + 7) & ~7;
            if (pos - h.snapshotsOffset + Qcow2Snapshot.FIXED + extra + idLen + nameLen > maxBytes) { // padding may lie past EOF
                throw new InvalidImageException(name + ": snapshot table entry " + i + " runs past the end of the table");
            }
            if (l1Size < 0 || (long) l1Size * 8 > Qcow2Header.MAX_L1_BYTES) {
                throw new InvalidImageException(name + ": snapshot " + i + " has an L1 table of "
                        + Integer.toUnsignedString(l1Size) + " entries, more than allowed");
            }
            if (l1Size > 0) {
                Qcow2Header.checkTable(name, "L1 table of snapshot " + i, l1Offset, l1Size * 8L, h.clusterSize(), fileSize);
            }
            ByteBuffer rest = ByteBuffer.allocate(extra + idLen + nameLen);
            file.readFully(pos + Qcow2Snapshot.FIXED, rest, "snapshot table entry " + i);
            byte[] extraData = new byte[extra], id = new byte[idLen], nm = new byte[nameLen];
            rest.flip();
            rest.get(extraData).get(id).get(nm);
            long diskSize = extra >= Qcow2Snapshot.EXTRA_V3 ? ByteBuffer.wrap(extraData).getLong(8) : h.size;
            if (diskSize < 0 || diskSize > Qcow2Header.maxSize(h.clusterBits, h.l2Bits())
                    || Qcow2Header.l1EntriesFor(diskSize, h.clusterBits, h.l2Bits()) > l1Size) {
                throw new InvalidImageException(name + ": snapshot " + i + " has disk size " + diskSize
                        + " that its L1 table (" + l1Size + " entries) cannot map");
            }
            list.add(new Qcow2Snapshot(new String(id, StandardCharsets.UTF_8), new String(nm, StandardCharsets.UTF_8),
                    l1Offset, l1Size, Integer.toUnsignedLong(fixed.getInt(16)), fixed.getInt(20), fixed.getLong(24),
                    fixed.getInt(32), extraData, diskSize));
            pos += entrySize;
        }
        tableBytes[0] = pos - h.snapshotsOffset;
        return list;
    }
}
