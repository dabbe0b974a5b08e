package dev.panamax.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.function.Consumer;
import java.util.zip.CRC32C;

/**
 * Small VHDX files for tests, laid out as qemu-img lays them out: the header section, a 1 MiB log at
 * 1 MiB, the BAT at 2 MiB, the metadata at 3 MiB and payload blocks from 4 MiB. Panamax does not write
 * VHDX, so its hostile tests and fuzz seeds start from these; {@code QemuVhdxTest} shows QEMU reads them.
 */
public final class VhdxFiles {
    public static final long MiB = 1 << 20;
    public static final long HEADER_1 = 64 << 10, HEADER_2 = 128 << 10;
    public static final long REGION_TABLE_1 = 192 << 10, REGION_TABLE_2 = 256 << 10;
    public static final long LOG = MiB, BAT = 2 * MiB, METADATA = 3 * MiB, DATA = 4 * MiB;
    /** Where the metadata items are, from the metadata region's start: file parameters, size, page 83, logical and physical sector size. */
    public static final long PARAMETERS = 64 << 10, VIRTUAL_SIZE = PARAMETERS + 8, PAGE_83 = PARAMETERS + 16,
            LOGICAL_SECTOR = PARAMETERS + 32, PHYSICAL_SECTOR = PARAMETERS + 36;

    private VhdxFiles() {}

    /**
     * Writes a VHDX image of {@code disk}'s bytes in blocks of {@code blockSize}, logical sectors of 512
     * bytes: blocks holding only zeros are NOT_PRESENT (ZERO when {@code fixed}), the others FULLY_PRESENT,
     * in order from {@link #DATA}.
     */
    public static Path write(Path path, byte[] disk, int blockSize, boolean fixed) throws IOException {
        long chunkRatio = (1L << 23) * 512 / blockSize;
        int blocks = (disk.length + blockSize - 1) / blockSize;
        long entries = blocks == 0 ? 0 : blocks + (blocks - 1) / chunkRatio;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer id = ByteBuffer.allocate(64 << 10).order(ByteOrder.LITTLE_ENDIAN);
            id.put("vhdxfile".getBytes(StandardCharsets.US_ASCII)).put("panamax tests".getBytes(StandardCharsets.UTF_16LE));
            ch.write(id.clear(), 0);
            ch.write(header(1), HEADER_1);
            ch.write(header(2), HEADER_2);
            ch.write(regionTable(), REGION_TABLE_1);
            ch.write(regionTable(), REGION_TABLE_2);
            ch.write(metadata(disk.length, blockSize, fixed), METADATA);
            ByteBuffer bat = ByteBuffer.allocate((int) (entries * 8)).order(ByteOrder.LITTLE_ENDIAN);
            long next = DATA;
            for (int block = 0; block < blocks; block++) {
                int from = block * blockSize, to = Math.min(disk.length, from + blockSize);
                boolean zero = true;
                for (int i = from; i < to && zero; i++) zero = disk[i] == 0;
                long entry = zero ? (fixed ? 2 : 0) : next | 6;
                if (!zero) {
                    ch.write(ByteBuffer.wrap(disk, from, to - from), next);
                    next += blockSize;
                }
                bat.putLong((int) (8 * (block + block / chunkRatio)), entry);
            }
            ch.write(bat.clear(), BAT);
            if (next == DATA) ch.write(ByteBuffer.allocate(1), DATA - 1); // the file ends after the metadata region at least
        }
        return path;
    }

    private static ByteBuffer header(long sequence) {
        ByteBuffer h = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
        h.put(0, "head".getBytes(StandardCharsets.US_ASCII)).putLong(8, sequence);
        h.putLong(16, 0x1111).putLong(32, 0x2222); // file and data write GUIDs; the log GUID stays zero (no log in use)
        h.putShort(64, (short) 0).putShort(66, (short) 1).putInt(68, (int) MiB).putLong(72, LOG);
        return withCrc(h);
    }

    private static ByteBuffer regionTable() {
        ByteBuffer t = ByteBuffer.allocate(64 << 10).order(ByteOrder.LITTLE_ENDIAN);
        t.put(0, "regi".getBytes(StandardCharsets.US_ASCII)).putInt(8, 2);
        region(t, 16, "2DC27766-F623-4200-9D64-115E9BFD4A08", BAT);
        region(t, 48, "8B7CA206-4790-4B9A-B8FE-575F050F886E", METADATA);
        return withCrc(t);
    }

    private static void region(ByteBuffer t, int at, String guid, long offset) {
        t.put(at, guid(guid)).putLong(at + 16, offset).putInt(at + 24, (int) MiB).putInt(at + 28, 1);
    }

    private static ByteBuffer metadata(long size, int blockSize, boolean fixed) {
        ByteBuffer m = ByteBuffer.allocate((int) MiB).order(ByteOrder.LITTLE_ENDIAN);
        m.put(0, "metadata".getBytes(StandardCharsets.US_ASCII)).putShort(10, (short) 5);
        item(m, 0, "CAA16737-FA36-4D43-B3B6-33F0AA44E76B", PARAMETERS, 8, 4);
        item(m, 1, "2FA54224-CD1B-4876-B211-5DBED83BF4B8", VIRTUAL_SIZE, 8, 6);
        item(m, 2, "BECA12AB-B2E6-4523-93EF-C309E000C746", PAGE_83, 16, 6);
        item(m, 3, "8141BF1D-A96F-4709-BA47-F233A8FAAB5F", LOGICAL_SECTOR, 4, 6);
        item(m, 4, "CDA348C7-445D-4471-9CC9-E9885251C556", PHYSICAL_SECTOR, 4, 6);
        m.putInt((int) PARAMETERS, blockSize).putInt((int) PARAMETERS + 4, fixed ? 1 : 0);
        m.putLong((int) VIRTUAL_SIZE, size);
        m.putLong((int) PAGE_83, 0x0123456789abcdefL).putLong((int) PAGE_83 + 8, 0x0fedcba987654321L);
        m.putInt((int) LOGICAL_SECTOR, 512).putInt((int) PHYSICAL_SECTOR, 4096);
        return m;
    }

    /** Writes metadata table entry {@code index}: its item GUID, offset, length and flags (4: required, 2: virtual disk). */
    public static void item(ByteBuffer m, int index, String guid, long offset, int length, int flags) {
        int at = 32 + 32 * index;
        m.put(at, guid(guid)).putInt(at + 16, (int) offset).putInt(at + 20, length).putInt(at + 24, flags);
    }

    /** A GUID's text in VHDX's on-disk layout (the first three fields little-endian). */
    public static byte[] guid(String text) {
        String hex = text.replace("-", "");
        byte[] b = new byte[16];
        for (int i = 0; i < 16; i++) b[i] = (byte) Integer.parseInt(hex, 2 * i, 2 * i + 2, 16);
        byte[] le = b.clone();
        for (int i = 0; i < 4; i++) le[i] = b[3 - i];
        le[4] = b[5];
        le[5] = b[4];
        le[6] = b[7];
        le[7] = b[6];
        return le;
    }

    /** Puts the CRC-32C of the whole buffer, computed with the checksum field (bytes 4-7) zero, into that field. */
    public static ByteBuffer withCrc(ByteBuffer b) {
        b.putInt(4, 0);
        CRC32C crc = new CRC32C();
        crc.update(b.duplicate().clear());
        return b.putInt(4, (int) crc.getValue()).clear();
    }

    /** Changes the structure of {@code length} bytes at {@code offset} (a header or a region table) and fixes its checksum. */
    public static void rewrite(Path file, long offset, int length, Consumer<ByteBuffer> change) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(b, offset);
            change.accept(b);
            ch.write(withCrc(b), offset);
        }
    }

    /** {@link #rewrite} of both headers. */
    public static void rewriteHeaders(Path file, Consumer<ByteBuffer> change) throws IOException {
        rewrite(file, HEADER_1, 4096, change);
        rewrite(file, HEADER_2, 4096, change);
    }

    /** {@link #rewrite} of both region tables. */
    public static void rewriteRegionTables(Path file, Consumer<ByteBuffer> change) throws IOException {
        rewrite(file, REGION_TABLE_1, 64 << 10, change);
        rewrite(file, REGION_TABLE_2, 64 << 10, change);
    }

    /** Writes {@code bytes} at {@code offset} (no checksum: the BAT and metadata have none). */
    public static void poke(Path file, long offset, Consumer<ByteBuffer> bytes) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
        bytes.accept(b);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(b.flip(), offset);
        }
    }
}
