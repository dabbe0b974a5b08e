package dev.panamax.storage.qcow2;

import dev.panamax.storage.ImageFile;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One entry of the qcow2 snapshot table: an L1 table frozen at the time of the snapshot.
 *
 * @param extraData the extra-data area verbatim (VM state size, disk size, icount), kept on rewrite
 */
public record Qcow2Snapshot(String id, String name, long l1TableOffset, int l1Size, long dateSeconds, int dateNanos,
        long vmClockNanos, int vmStateSize, byte[] extraData, long diskSize) {

    static final int FIXED = 40, EXTRA_V3 = 16, MAX_EXTRA = 1024;
    static final long MAX_TABLE_BYTES = 64L << 20;

    int encodedSize() {
        int n = FIXED + extraData.length + utf8(id).length + utf8(name).length;
        return (n + 7) & ~7;
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static byte[] extraFor(long diskSize) {
        return ByteBuffer.allocate(EXTRA_V3).putLong(0).putLong(diskSize).array();
    }

    static ByteBuffer encode(List<Qcow2Snapshot> snapshots) {
        int total = 0;
        for (Qcow2Snapshot s : snapshots) total += s.encodedSize();
        ByteBuffer b = ByteBuffer.allocate(total);
        for (Qcow2Snapshot s : snapshots) {
            int start = b.position();
            byte[] id = utf8(s.id), name = utf8(s.name);
            b.putLong(s.l1TableOffset).putInt(s.l1Size).putShort((short) id.length).putShort((short) name.length)
                    .putInt((int) s.dateSeconds).putInt(s.dateNanos).putLong(s.vmClockNanos).putInt(s.vmStateSize)
                    .putInt(s.extraData.length).put(s.extraData).put(id).put(name);
            b.position(start + s.encodedSize());
        }
        b.flip();
        return b;
    }

    /** Reads and validates {@code count} entries at {@code offset}; returns them and the table's byte size. */
    static List<Qcow2Snapshot> readTable(ImageFile file, Qcow2Header h, long[] tableBytes) throws IOException {
        String name = file.path().toString();
        List<Qcow2Snapshot> list = new ArrayList<>();
        tableBytes[0] = 0;
        if (h.nbSnapshots == 0) return list;
        long fileSize = file.size();
        long maxBytes = Math.min(MAX_TABLE_BYTES, fileSize - h.snapshotsOffset);
        long pos = h.snapshotsOffset;
        ByteBuffer fixed = ByteBuffer.allocate(FIXED);
        for (int i = 0; i < h.nbSnapshots; i++) {
            if (pos - h.snapshotsOffset + FIXED > maxBytes) {
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
            int entrySize = (FIXED + extra + idLen + nameLen + 7) & ~7;
            if (pos - h.snapshotsOffset + FIXED + extra + idLen + nameLen > maxBytes) { // padding may lie past EOF
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
            file.readFully(pos + FIXED, rest, "snapshot table entry " + i);
            byte[] extraData = new byte[extra], id = new byte[idLen], nm = new byte[nameLen];
            rest.flip();
            rest.get(extraData).get(id).get(nm);
            long diskSize = extra >= EXTRA_V3 ? ByteBuffer.wrap(extraData).getLong(8) : h.size;
            if (diskSize < 0 || diskSize > Qcow2Header.maxSize(h.clusterBits)
                    || Qcow2Header.l1EntriesFor(diskSize, h.clusterBits) > l1Size) {
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
