package dev.panamax.storage.qcow2;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * One entry of the qcow2 snapshot table: an L1 table frozen at the time of the snapshot. The table
 * itself is read and written by {@link Qcow2Snapshots}.
 *
 * @param extraData the extra-data area verbatim (VM state size, disk size, icount), kept on rewrite
 */
public record Qcow2Snapshot(String id, String name, long l1TableOffset, int l1Size, long dateSeconds, int dateNanos,
        long vmClockNanos, int vmStateSize, byte[] extraData, long diskSize) {

    /** Bytes of an entry before its extra data, ID and name; extra data of version 3 images. */
    static final int FIXED = 40, EXTRA_V3 = 16;

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
}
