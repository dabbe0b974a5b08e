package dev.panamax.storage.vhdx;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A GUID as VHDX stores it: Microsoft's layout, whose first three fields are little-endian and whose
 * last eight bytes are in order. Held as the 16 bytes on disk, read as two little-endian longs.
 */
record MsGuid(long low, long high) {
    static final MsGuid ZERO = new MsGuid(0, 0);

    /** The GUID written as text ({@code 2DC27766-F623-4200-9D64-115E9BFD4A08}), in its on-disk layout. */
    static MsGuid parse(String text) {
        String hex = text.replace("-", "");
        if (hex.length() != 32) throw new IllegalArgumentException("not a GUID: " + text);
        byte[] b = new byte[16];
        for (int i = 0; i < 16; i++) b[i] = (byte) Integer.parseInt(hex, 2 * i, 2 * i + 2, 16);
        swap(b, 0, 3);
        swap(b, 1, 2);
        swap(b, 4, 5);
        swap(b, 6, 7);
        return read(ByteBuffer.wrap(b), 0);
    }

    private static void swap(byte[] b, int i, int j) {
        byte t = b[i];
        b[i] = b[j];
        b[j] = t;
    }

    /** The GUID stored at {@code at} in {@code b}. */
    static MsGuid read(ByteBuffer b, int at) {
        ByteBuffer le = b.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        return new MsGuid(le.getLong(at), le.getLong(at + 8));
    }

    @Override
    public String toString() {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(low).putLong(high);
        b.flip();
        return String.format("%08X-%04X-%04X-%04X-%012X", b.getInt(0), b.getShort(4), b.getShort(6),
                b.order(ByteOrder.BIG_ENDIAN).getShort(8), b.getLong(8) & 0xffff_ffff_ffffL);
    }
}
