package dev.panamax.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The damaged-image corpus of the salvage and rebuild tests: images qemu-img makes from a known pattern,
 * then damaged in one place each, with the guest ranges that damage makes unreadable.
 */
public final class DamagedImages {
    /** 4 KiB clusters: an L2 table maps 2 MiB, so an 8 MiB disk has four of them. */
    public static final int CLUSTER = 4096;
    public static final long L2_SPAN = (long) CLUSTER / 8 * CLUSTER;
    public static final int SIZE = 8 << 20;

    private DamagedImages() {}

    /** A damaged range of the guest, and a fragment of the reason a reader must give. */
    public record Range(long offset, long length, String reason) {
        public long end() {
            return offset + length;
        }
    }

    /** A damaged image and exactly the guest ranges its damage makes unreadable. */
    public record Damaged(Path image, List<Range> ranges) {}

    /** Cluster {@code i} holds data unless {@code i % 3 == 2}: half bytes of {@code Random(i)}, half the byte {@code i | 1}. */
    public static byte[] pattern() {
        byte[] d = new byte[SIZE];
        for (int i = 0; i < SIZE / CLUSTER; i++) {
            if (i % 3 == 2) continue;
            byte[] half = new byte[CLUSTER / 2];
            new Random(i).nextBytes(half);
            System.arraycopy(half, 0, d, i * CLUSTER, half.length);
            java.util.Arrays.fill(d, i * CLUSTER + CLUSTER / 2, (i + 1) * CLUSTER, (byte) (i | 1));
        }
        return d;
    }

    public static Path patternRaw(Path dir) throws IOException {
        Path raw = dir.resolve("pattern.raw");
        if (!Files.exists(raw)) Files.write(raw, pattern());
        return raw;
    }

    /** qemu-img's qcow2 of the pattern with 4 KiB clusters; {@code compression} zlib or zstd compresses every cluster. */
    public static Path qcow2(Path dir, String name, String compression) throws IOException {
        Path image = dir.resolve(name);
        List<String> args = new ArrayList<>(List.of("convert", "-f", "raw", "-O", "qcow2"));
        if (compression != null) args.addAll(List.of("-c", "-o", "compression_type=" + compression + ",cluster_size=" + CLUSTER));
        else args.addAll(List.of("-o", "cluster_size=" + CLUSTER));
        args.addAll(List.of(patternRaw(dir).toString(), image.toString()));
        QemuImg.img(args.toArray(String[]::new)).expectSuccess("qemu-img convert to qcow2");
        return image;
    }

    // ---------------------------------------------------------------- the corpus

    /** L1 entry 1 overwritten with a misaligned value: its whole L2 range (2-4 MiB) is lost. */
    public static Damaged overwrittenL1Entry(Path dir) throws IOException {
        Path image = qcow2(dir, "l1-entry.qcow2", null);
        putLong(image, l1Offset(image) + 8, 0x8000000000001234L);
        return new Damaged(image, List.of(new Range(L2_SPAN, L2_SPAN, "L1 entry 1")));
    }

    /**
     * Three L2 entries damaged: one past the end of the file, one misaligned, one on the L1 table; each
     * loses exactly its cluster.
     */
    public static Damaged badL2Entries(Path dir) throws IOException {
        Path image = qcow2(dir, "l2-entries.qcow2", null);
        long fileEnd = Files.size(image);
        long pastEof = 1027, misaligned = 1539, onL1 = 9; // each a data cluster of the pattern (i % 3 != 2)
        putLong(image, l2EntryAt(image, onL1), 0x8000000000000000L | l1Offset(image));
        putLong(image, l2EntryAt(image, pastEof), 0x8000000000000000L | (fileEnd + 100L * CLUSTER) / CLUSTER * CLUSTER);
        long entry = getLong(image, l2EntryAt(image, misaligned));
        putLong(image, l2EntryAt(image, misaligned), entry + 512);
        return new Damaged(image, List.of(new Range(onL1 * CLUSTER, CLUSTER, "on the L1 table"),
                new Range(pastEof * CLUSTER, CLUSTER, "past the end of the file"),
                new Range(misaligned * CLUSTER, CLUSTER, "not a valid cluster")));
    }

    /** Every cluster compressed with {@code compression}; the file cut in the middle of its last compressed cluster. */
    public static Damaged truncatedCompressedCluster(Path dir, String compression) throws IOException {
        Path image = qcow2(dir, "truncated-" + compression + ".qcow2", compression);
        int offsetBits = 62 - (Integer.numberOfTrailingZeros(CLUSTER) - 8);
        long last = -1, lastGuest = -1;
        for (long g = 0; g < SIZE / CLUSTER; g++) {
            long e = getLong(image, l2EntryAt(image, g));
            if ((e >>> 62) != 1) continue;
            long off = e & ((1L << offsetBits) - 1);
            if (off > last) {
                last = off;
                lastGuest = g;
            }
        }
        if (last < 0 || Files.size(image) - last > CLUSTER + 512) {
            throw new IllegalStateException("qemu-img's compressed image does not end with a compressed cluster");
        }
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.WRITE)) {
            ch.truncate(last + 100);
        }
        return new Damaged(image, List.of(new Range(lastGuest * CLUSTER, CLUSTER, "compressed cluster")));
    }

    /** A dynamic VHD of the pattern (2 MiB blocks) whose block 1 is placed past the end of the file. */
    public static Damaged vhdBlockPastEof(Path dir) throws IOException {
        Path image = dir.resolve("bat.vhd");
        QemuImg.img("convert", "-f", "raw", "-O", "vpc", "-o", "force_size=on", patternRaw(dir).toString(), image.toString())
                .expectSuccess("qemu-img convert to vhd");
        long dynHeader = getLong(image, 16); // in the footer copy at the start
        long bat = getLong(image, dynHeader + 16);
        long pastEof = (Files.size(image) + (64L << 20)) / 512;
        ByteBuffer b = ByteBuffer.allocate(4).putInt(0, (int) pastEof);
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.WRITE)) {
            ch.write(b, bat + 4);
        }
        return new Damaged(image, List.of(new Range(2 << 20, 2 << 20, "past the end of the file")));
    }

    // ---------------------------------------------------------------- poking qcow2 files

    public static long l1Offset(Path qcow2) throws IOException {
        return getLong(qcow2, 40);
    }

    /** Where the L2 entry of guest cluster {@code g} is in the file (through the L1 table as it is now). */
    public static long l2EntryAt(Path qcow2, long g) throws IOException {
        long l1Entry = getLong(qcow2, l1Offset(qcow2) + 8 * (g / (CLUSTER / 8)));
        return (l1Entry & 0x00fffffffffffe00L) + 8 * (g % (CLUSTER / 8));
    }

    public static long getLong(Path file, long offset) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ch.read(b, offset);
        }
        return b.getLong(0);
    }

    public static void putLong(Path file, long offset, long value) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).putLong(0, value), offset);
        }
    }

    /** Zeroes {@code length} bytes at {@code offset}. */
    public static void zero(Path file, long offset, int length) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(length), offset);
        }
    }
}
