package dev.panamax.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/** Small helpers shared by the storage tests. */
public final class Disks {
    private Disks() {}

    public static byte[] readAll(BlockBackend disk) throws IOException {
        byte[] all = new byte[Math.toIntExact(disk.size())];
        disk.read(0, ByteBuffer.wrap(all));
        return all;
    }

    /** Index of the first differing byte, or -1. */
    public static int firstDifference(byte[] a, byte[] b) {
        return Arrays.mismatch(a, b);
    }
}
