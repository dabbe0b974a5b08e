package dev.panamax.storage.qcow2;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CheckReport;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.Disks;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageCorruptException;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.QemuImg;
import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.image.ImageInfo;
import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Extended L2 entries (32 subclusters per cluster): images qemu-img and qemu-io write read back
 * equal, Panamax allocates only the subclusters a write touches and its images pass qemu-img check
 * and compare, and bitmaps that break the format's rules are a clear corruption error.
 */
class Qcow2ExtendedL2Test {
    private static final int CLUSTER = 65536, SUBCLUSTER = CLUSTER / 32, SIZE = 4 << 20;

    @TempDir
    Path dir;

    private static byte[] pattern(int size, long seed) {
        byte[] b = new byte[size];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** A raw backing file of random bytes; returns its contents. */
    private byte[] rawBase(Path p) throws IOException {
        byte[] b = pattern(SIZE, 11);
        Files.write(p, b);
        return b;
    }

    private static byte[] panamaxRead(Path image) throws IOException {
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly())) {
            return Disks.readAll(disk);
        }
    }

    private byte[] qemuRead(Path image) throws IOException {
        Path out = dir.resolve("qemu-view-" + System.nanoTime() + ".raw");
        QemuImg.img("convert", "-f", "qcow2", "-O", "raw", image.toString(), out.toString()).expectSuccess("qemu-img convert");
        byte[] b = Files.readAllBytes(out);
        Files.delete(out);
        return b;
    }

    private static void assertSame(byte[] actual, byte[] expected, String what) {
        assertThat(actual.length).as(what + " size").isEqualTo(expected.length);
        assertThat(Arrays.mismatch(actual, expected)).as(what + ": first differing byte").isEqualTo(-1);
    }

    private static void qemuCheckClean(Path image) throws IOException {
        QemuImg.Result r = QemuImg.img("check", "-f", "qcow2", image.toString());
        assertThat(r.status()).as("qemu-img check:\n" + r.out() + r.err()).isZero();
    }

    private static void panamaxCheckClean(Path image) throws IOException {
        CheckReport report = ImageChecker.check(image);
        assertThat(report.problems()).as("Panamax check of " + image).isEmpty();
    }

    private Path extendedOverlay(String name, Path base) throws IOException {
        Path p = dir.resolve(name);
        Images.create(p, CreateOptions.of(ImageFormat.QCOW2, SIZE).withBacking(base.getFileName().toString(), ImageFormat.RAW)
                .withExtendedL2(true));
        return p;
    }

    @Test
    void imagesQemuWritesWithSubclustersReadBackEqual() throws Exception {
        Path base = dir.resolve("base.raw");
        rawBase(base);
        Path ov = dir.resolve("qemu-ov.qcow2");
        QemuImg.img("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", "-b", "base.raw", "-F", "raw",
                ov.toString()).expectSuccess("qemu-img create -o extended_l2=on");
        QemuImg.io("qcow2", ov, "write -P 0xab 4k 4k", "write -z 68k 8k", "write -P 0xcd 130k 3k",
                "write -P 0x11 1M 200k", "discard 1088k 64k", "write -z 2M 64k", "write -P 0x22 3M 1k")
                .expectSuccess("qemu-io");
        assertThat(ImageInfo.read(ov).extendedL2()).isTrue();
        assertSame(panamaxRead(ov), qemuRead(ov), "qemu's extended-L2 overlay read by Panamax");
        panamaxCheckClean(ov);

        try (BlockBackend d = Images.open(ov, Images.OpenOptions.readOnly())) {
            assertThat(d.extent(0, CLUSTER)).isEqualTo(new Extent(0, 4096, Extent.Kind.UNALLOCATED));
            assertThat(d.extent(4096, CLUSTER)).isEqualTo(new Extent(4096, 4096, Extent.Kind.DATA));
            assertThat(d.extent(68 << 10, CLUSTER)).isEqualTo(new Extent(68 << 10, 8192, Extent.Kind.ZERO));
        }
    }

    @Test
    void aSmallWriteAllocatesOnlyItsSubclusters() throws Exception {
        Path base = dir.resolve("base.raw");
        byte[] expected = rawBase(base);
        Path ov = extendedOverlay("ov.qcow2", base);
        byte[] four = new byte[4096];
        Arrays.fill(four, (byte) 0xab);
        try (BlockBackend d = Images.open(ov, Images.OpenOptions.readWrite())) {
            d.write(4096, ByteBuffer.wrap(four));
            assertThat(d.extent(0, CLUSTER)).isEqualTo(new Extent(0, 4096, Extent.Kind.UNALLOCATED));
            assertThat(d.extent(4096, CLUSTER)).isEqualTo(new Extent(4096, 4096, Extent.Kind.DATA));
            assertThat(d.extent(8192, CLUSTER - 8192)).isEqualTo(new Extent(8192, CLUSTER - 8192, Extent.Kind.UNALLOCATED));
        }
        System.arraycopy(four, 0, expected, 4096, 4096);
        assertSame(panamaxRead(ov), expected, "Panamax's read");
        qemuCheckClean(ov);
        assertSame(qemuRead(ov), expected, "qemu's read");
        // qemu sees the same: only [4 KiB, 8 KiB) comes from the overlay, the rest of the cluster from the backing file.
        String map = QemuImg.img("map", "--output=json", ov.toString()).expectSuccess("qemu-img map").out();
        assertThat(map).contains("\"start\": 0, \"length\": 4096, \"depth\": 1",
                "\"start\": 4096, \"length\": 4096, \"depth\": 0", "\"start\": 8192, \"length\": ");
        assertThat(ImageInfo.read(ov).fileSize()).as("the file ends where the write did: no copy of the whole cluster")
                .isLessThanOrEqualTo(5L * CLUSTER + 8192);
    }

    @Test
    void randomWritesZeroesAndDiscardsMatchAModelAndQemu() throws Exception {
        Path base = dir.resolve("base.raw");
        byte[] model = rawBase(base);
        randomOperations(extendedOverlay("ov.qcow2", base), model, 5);
        Path alone = dir.resolve("alone.qcow2"); // without a backing file discarded subclusters become unallocated
        Images.create(alone, CreateOptions.of(ImageFormat.QCOW2, SIZE).withExtendedL2(true).withClusterSize(32768));
        randomOperations(alone, new byte[SIZE], 6);
    }

    private void randomOperations(Path image, byte[] model, long seed) throws IOException {
        Random rnd = new Random(seed);
        try (BlockBackend d = Images.open(image, Images.OpenOptions.readWrite())) {
            for (int i = 0; i < 300; i++) {
                int span = rnd.nextInt(4) == 0 ? 3 * CLUSTER : rnd.nextInt(3) == 0 ? CLUSTER : 3 * SUBCLUSTER;
                int len = 1 + rnd.nextInt(span);
                int off = rnd.nextInt(SIZE - len);
                if (rnd.nextBoolean()) off &= ~(SUBCLUSTER / 2 - 1);
                switch (rnd.nextInt(5)) {
                    case 0 -> {
                        d.writeZeroes(off, len);
                        Arrays.fill(model, off, off + len, (byte) 0);
                    }
                    case 1 -> {
                        d.discard(off, len); // with a backing file a discarded range reads as zeros
                        Arrays.fill(model, off, off + len, (byte) 0);
                    }
                    default -> {
                        byte[] data = pattern(len, i);
                        d.write(off, ByteBuffer.wrap(data));
                        System.arraycopy(data, 0, model, off, len);
                    }
                }
                if (i % 50 == 49) {
                    assertSame(Disks.readAll(d), model, image + " after " + (i + 1) + " operations");
                    d.flush();
                }
            }
        }
        assertSame(panamaxRead(image), model, "Panamax's read after reopening");
        panamaxCheckClean(image);
        qemuCheckClean(image);
        Path raw = dir.resolve("model.raw");
        Files.write(raw, model);
        QemuImg.img("compare", "-f", "raw", "-F", "qcow2", raw.toString(), image.toString()).expectSuccess("qemu-img compare");
    }

    @Test
    void writesIntoClustersSharedWithASnapshotKeepTheOtherSubclusters() throws Exception {
        Path base = dir.resolve("base.raw");
        byte[] expected = rawBase(base);
        Path ov = extendedOverlay("ov.qcow2", base);
        byte[] a = pattern(3 * SUBCLUSTER, 1), b = pattern(100, 2);
        try (BlockBackend d = Images.open(ov, Images.OpenOptions.readWrite())) {
            d.write(SUBCLUSTER, ByteBuffer.wrap(a)); // subclusters 1..3 allocated
            ((Qcow2Image) d).createSnapshot("before");
            // A new host cluster: subclusters 1..3 copied along, 10 filled from the backing file around the write.
            d.write(10 * SUBCLUSTER + 7, ByteBuffer.wrap(b));
        }
        System.arraycopy(a, 0, expected, SUBCLUSTER, a.length);
        byte[] snapshot = expected.clone();
        System.arraycopy(b, 0, expected, 10 * SUBCLUSTER + 7, b.length);
        assertSame(panamaxRead(ov), expected, "Panamax's read");
        panamaxCheckClean(ov);
        qemuCheckClean(ov);
        assertSame(qemuRead(ov), expected, "qemu's read");
        try (Qcow2Image d = Qcow2Image.open(ov, true, (p, f) -> Images.open(p, Images.OpenOptions.readOnly().withFormat(f)),
                false)) {
            d.applySnapshot("before");
            assertSame(Disks.readAll(d), snapshot, "the snapshot");
        }
        qemuCheckClean(ov);
    }

    @Test
    void createRecordsExtendedEntriesAndRefusesSmallClusters() throws Exception {
        Path p = dir.resolve("x.qcow2");
        Images.create(p, CreateOptions.of(ImageFormat.QCOW2, SIZE).withClusterSize(16384).withExtendedL2(true));
        assertThat(QemuImg.img("info", p.toString()).out()).contains("extended l2: true", "cluster_size: 16384");
        qemuCheckClean(p);
        assertThatThrownBy(() -> Images.create(dir.resolve("small.qcow2"), CreateOptions.of(ImageFormat.QCOW2, SIZE)
                .withClusterSize(8192).withExtendedL2(true)))
                .isInstanceOf(ImageRequestException.class).hasMessageContaining("at least 16384 bytes");
        assertThatThrownBy(() -> Images.create(dir.resolve("v2.qcow2"), CreateOptions.of(ImageFormat.QCOW2, SIZE)
                .withQcow2Version(2).withExtendedL2(true)))
                .isInstanceOf(ImageRequestException.class).hasMessageContaining("version 3");
    }

    // ---------------------------------------------------------------- hostile bitmaps and headers

    private static void poke(Path file, long offset, long value) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).putLong(value).flip(), offset);
        }
    }

    private static long peek(Path file, long offset) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(8);
            ch.read(b, offset);
            return b.flip().getLong();
        }
    }

    /** An extended image (no backing file) with data in its first subcluster; returns where the first L2 entry is. */
    private long imageWithOneEntry(Path p) throws IOException {
        Images.create(p, CreateOptions.of(ImageFormat.QCOW2, SIZE).withExtendedL2(true));
        try (BlockBackend d = Images.open(p, Images.OpenOptions.readWrite())) {
            d.write(0, ByteBuffer.wrap(pattern(SUBCLUSTER, 3)));
        }
        long l1 = peek(p, 40);
        return peek(p, l1) & L2Entry.OFFSET_MASK;
    }

    private static void assertCorrupt(Path p, String... fragments) throws IOException {
        assertThatThrownBy(() -> panamaxRead(p)).isInstanceOf(ImageCorruptException.class).hasMessageContainingAll(fragments);
        CheckReport report = ImageChecker.check(p);
        assertThat(report.corruptions()).as(report.problems().toString()).isPositive();
    }

    @Test
    void subclusterBothAllocatedAndZeroIsCorrupt() throws Exception {
        Path p = dir.resolve("both.qcow2");
        long l2 = imageWithOneEntry(p);
        assertThat(peek(p, l2 + 8)).isEqualTo(1L);
        poke(p, l2 + 8, 1L | 1L << 32);
        assertCorrupt(p, "guest offset 0", "subcluster 0 is marked both allocated and zero");
    }

    @Test
    void reservedBitsInL2EntriesAreCorrupt() throws Exception {
        Path p = dir.resolve("reserved.qcow2");
        long l2 = imageWithOneEntry(p);
        poke(p, l2, peek(p, l2) | L2Entry.ZERO); // bit 0 is reserved with extended entries
        assertCorrupt(p, "guest offset 0", "reserved bits");
        poke(p, l2, (peek(p, l2) & ~L2Entry.ZERO) | 0x200_0000_0000_0000L); // bit 57
        assertCorrupt(p, "guest offset 0", "reserved bits");

        Path standard = dir.resolve("standard.qcow2");
        Images.create(standard, CreateOptions.of(ImageFormat.QCOW2, SIZE));
        try (BlockBackend d = Images.open(standard, Images.OpenOptions.readWrite())) {
            d.write(CLUSTER, ByteBuffer.wrap(pattern(512, 4)));
        }
        long entry = (peek(standard, peek(standard, 40)) & L2Entry.OFFSET_MASK) + 8;
        poke(standard, entry, peek(standard, entry) | 0x20); // bit 5: no version defines it
        assertCorrupt(standard, "guest offset " + CLUSTER, "reserved bits");
    }

    @Test
    void compressedEntryWithSubclusterBitsIsCorrupt() throws Exception {
        Path p = dir.resolve("compressed.qcow2");
        Images.create(p, CreateOptions.of(ImageFormat.QCOW2, SIZE).withExtendedL2(true));
        byte[] cluster = new byte[CLUSTER];
        Arrays.fill(cluster, (byte) 5);
        try (BlockBackend d = Images.open(p, Images.OpenOptions.readWrite())) {
            ((Qcow2Image) d).writeCompressed(0, cluster, CLUSTER);
        }
        long l2 = peek(p, peek(p, 40)) & L2Entry.OFFSET_MASK;
        assertThat(L2Entry.isCompressed(peek(p, l2))).isTrue();
        assertSame(Arrays.copyOf(panamaxRead(p), CLUSTER), cluster, "the compressed cluster");
        poke(p, l2 + 8, 1L << 40);
        assertCorrupt(p, "guest offset 0", "compressed cluster has subcluster bits set");
    }

    @Test
    void extendedEntriesWithClustersTooSmallAreRefused() throws Exception {
        Path p = dir.resolve("small.qcow2");
        Images.create(p, CreateOptions.of(ImageFormat.QCOW2, SIZE).withClusterSize(4096));
        poke(p, 72, Qcow2Header.INCOMPAT_EXTL2);
        assertThatThrownBy(() -> panamaxRead(p)).isInstanceOf(InvalidImageException.class)
                .hasMessageContaining("extended L2 entries but 4096-byte clusters")
                .hasMessageContaining("at least 16384 bytes");
    }
}
