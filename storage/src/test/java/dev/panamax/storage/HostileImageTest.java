package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.image.ImageInfo;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Damaged and hostile images give a clear InvalidImageException naming the problem; nothing deeper. */
class HostileImageTest {
    @TempDir
    Path dir;

    private Path qcow2(String name, long size) throws IOException {
        Path p = dir.resolve(name);
        Images.create(p, CreateOptions.of(ImageFormat.QCOW2, size));
        return p;
    }

    private static void poke(Path file, long offset, ByteBuffer bytes) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(bytes.flip(), offset);
        }
    }

    private static void pokeInt(Path file, long offset, int v) throws IOException {
        poke(file, offset, ByteBuffer.allocate(4).putInt(v));
    }

    private static void pokeLong(Path file, long offset, long v) throws IOException {
        poke(file, offset, ByteBuffer.allocate(8).putLong(v));
    }

    private static void assertInvalid(Path image, String... fragments) {
        assertThatThrownBy(() -> {
            try (BlockBackend d = Images.open(image, Images.OpenOptions.readOnly())) {
                Disks.readAll(d);
            }
        }).isInstanceOf(InvalidImageException.class).hasMessageContainingAll(fragments);
    }

    @Test
    void truncatedFiles() throws Exception {
        Path p = qcow2("t.qcow2", 1 << 20);
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.truncate(50);
        }
        assertInvalid(p, "t.qcow2", "too short");
        Path q = qcow2("t2.qcow2", 1 << 20);
        try (FileChannel ch = FileChannel.open(q, StandardOpenOption.WRITE)) {
            ch.truncate(65536 + 100); // header intact, refcount table cut
        }
        assertInvalid(q, "t2.qcow2", "extends past the end of the file");
    }

    @Test
    void tablesPointingOutsideTheFile() throws Exception {
        Path p = qcow2("l1.qcow2", 1 << 20);
        pokeLong(p, 40, 1L << 40); // l1_table_offset
        assertInvalid(p, "L1 table", "past the end of the file");

        Path q = qcow2("l2.qcow2", 1 << 20);
        try (BlockBackend d = Images.open(q, Images.OpenOptions.readWrite())) {
            d.write(0, ByteBuffer.wrap(new byte[] {1}));
        }
        long l1 = ByteBuffer.wrap(Files.readAllBytes(q)).getLong(40);
        pokeLong(q, l1, (1L << 63) | (1L << 45)); // L2 far away
        assertInvalid(q, "L2 table", "past the end of the file");
    }

    @Test
    void dataClusterPastEndOfFile() throws Exception {
        Path p = qcow2("d.qcow2", 1 << 20);
        try (BlockBackend d = Images.open(p, Images.OpenOptions.readWrite())) {
            d.write(0, ByteBuffer.wrap(new byte[] {1}));
        }
        ByteBuffer all = ByteBuffer.wrap(Files.readAllBytes(p));
        long l2 = all.getLong((int) all.getLong(40)) & 0x00fffffffffffe00L;
        pokeLong(p, l2, (1L << 63) | (1L << 40));
        assertInvalid(p, "data cluster", "past the end of the file");
        assertThat(ImageChecker.check(p).corruptions()).isPositive();
        // Meeting the damage while writing marks the image corrupt, so nothing writes to it again.
        try (BlockBackend d = Images.open(p, Images.OpenOptions.readWrite())) {
            assertThatThrownBy(() -> d.write(10, ByteBuffer.wrap(new byte[] {2})))
                    .isInstanceOf(ImageCorruptException.class).hasMessageContaining("now marked corrupt");
            assertThatThrownBy(() -> d.write(70000, ByteBuffer.wrap(new byte[] {2})))
                    .isInstanceOf(ReadOnlyImageException.class).hasMessageContaining("marked corrupt");
        }
        assertThatThrownBy(() -> Images.open(p, Images.OpenOptions.readWrite()))
                .isInstanceOf(InvalidImageException.class).hasMessageContaining("marked corrupt");
        assertThat(ImageInfo.read(p).corrupt()).isTrue();
    }

    @Test
    void refcountBlockOffsetWithTheTopBitSet() throws Exception {
        Path p = qcow2("rb.qcow2", 1 << 20);
        long refcountTable = ByteBuffer.wrap(Files.readAllBytes(p)).getLong(48);
        pokeLong(p, refcountTable, Long.MIN_VALUE | 65536); // bit 63: no file offset, a negative long
        CheckReport report = ImageChecker.check(p);
        assertThat(report.corruptions()).isPositive();
        assertThat(report.problems()).anySatisfy(problem -> assertThat(problem.message())
                .contains("refcount table entry 0 (0x8000000000010000) points past the end of the file"));
    }

    @Test
    void absurdHeaderValues() throws Exception {
        Path bits = qcow2("bits.qcow2", 1 << 20);
        pokeInt(bits, 20, 40);
        assertInvalid(bits, "cluster_bits 40");
        Path size = qcow2("size.qcow2", 1 << 20);
        pokeLong(size, 24, 1L << 62);
        assertInvalid(size, "virtual size");
        Path l1 = qcow2("l1size.qcow2", 1 << 20);
        pokeInt(l1, 36, Integer.MAX_VALUE);
        assertInvalid(l1, "L1 table size", "too large");
        Path rt = qcow2("reftable.qcow2", 1 << 20);
        pokeInt(rt, 56, 1 << 30);
        assertInvalid(rt, "refcount table");
        Path snaps = qcow2("snaps.qcow2", 1 << 20);
        pokeInt(snaps, 60, 1 << 20);
        assertInvalid(snaps, "snapshot count");
        Path order = qcow2("order.qcow2", 1 << 20);
        pokeInt(order, 96, 7);
        assertInvalid(order, "refcount_order 7");
        Path ext = qcow2("ext.qcow2", 1 << 20);
        pokeInt(ext, 112, 0x12345678);
        pokeInt(ext, 116, 1 << 30);
        assertInvalid(ext, "header extension", "runs past");
        Path magic = qcow2("magic.qcow2", 1 << 20);
        pokeInt(magic, 4, 99);
        assertInvalid(magic, "version 99");
    }

    @Test
    void refcountOverflow() throws Exception {
        Path p = dir.resolve("rc1.qcow2");
        Qcow2Image.create(p, CreateOptions.of(ImageFormat.QCOW2, 1 << 20).withRefcountBits(1).withClusterSize(4096));
        try (Qcow2Image q = (Qcow2Image) Images.open(p, Images.OpenOptions.readWrite())) {
            q.write(0, ByteBuffer.wrap(new byte[4096]));
            assertThatThrownBy(() -> q.createSnapshot("s")).isInstanceOf(InvalidImageException.class)
                    .hasMessageContaining("refcount overflow");
        }
    }

    @Test
    void loopingAndMissingBackingChains() throws Exception {
        Path a = dir.resolve("a.qcow2"), b = dir.resolve("b.qcow2");
        Images.create(a, CreateOptions.of(ImageFormat.QCOW2, 1 << 20));
        Images.create(b, CreateOptions.of(ImageFormat.QCOW2, 1 << 20).withBacking("a.qcow2", ImageFormat.QCOW2));
        try (Qcow2Image q = Qcow2Image.open(a, true, null, false)) {
            q.setBackingFile("b.qcow2", ImageFormat.QCOW2);
        }
        assertInvalid(b, "loops");
        Path self = dir.resolve("self.qcow2");
        Images.create(self, CreateOptions.of(ImageFormat.QCOW2, 1 << 20));
        try (Qcow2Image q = Qcow2Image.open(self, true, null, false)) {
            q.setBackingFile("self.qcow2", null);
        }
        assertInvalid(self, "loops");
        Path orphan = dir.resolve("orphan.qcow2");
        Images.create(orphan, CreateOptions.of(ImageFormat.QCOW2, 1 << 20));
        try (Qcow2Image q = Qcow2Image.open(orphan, true, null, false)) {
            q.setBackingFile("gone.raw", ImageFormat.RAW);
        }
        assertInvalid(orphan, "gone.raw", "does not exist", "rebase");
    }

    @Test
    void corruptBitIsHonoured() throws Exception {
        Path p = qcow2("c.qcow2", 1 << 20);
        pokeLong(p, 72, 2); // incompatible feature: corrupt
        assertThatThrownBy(() -> Images.open(p, Images.OpenOptions.readWrite()))
                .isInstanceOf(InvalidImageException.class).hasMessageContaining("marked corrupt");
        try (BlockBackend d = Images.open(p, Images.OpenOptions.readOnly())) {
            assertThat(d.size()).isEqualTo(1 << 20);
        }
        ImageChecker.repair(p);
        Images.open(p, Images.OpenOptions.readWrite()).close(); // repaired: writable again
    }

    @Test
    void damagedVhd() throws Exception {
        Path p = dir.resolve("v.vhd");
        Images.create(p, CreateOptions.of(ImageFormat.VHD, 8 << 20));
        long size = Files.size(p);
        pokeInt(p, size - 512 + 48, 12345); // current size changed without fixing the checksum
        pokeInt(p, 48, 12345);
        assertInvalid(p, "checksum");
        Path q = dir.resolve("w.vhd");
        Images.create(q, CreateOptions.of(ImageFormat.VHD, 8 << 20));
        byte[] all = Files.readAllBytes(q);
        ByteBuffer dyn = ByteBuffer.wrap(all, 512, 1024).slice();
        dyn.putInt(32, 3); // absurd block size, checksum fixed up so that the value itself is what fails
        dyn.putInt(36, 0);
        int sum = 0;
        for (int i = 0; i < 1024; i++) if (i < 36 || i >= 40) sum += all[512 + i] & 0xff;
        dyn.putInt(36, ~sum);
        Files.write(q, all);
        assertInvalid(q, "block size");
    }

    /** Random damage to the metadata of real images: open, read and check either work or fail cleanly. */
    @Test
    void fuzzedMetadataNeverEscapesAsAnotherException() throws Exception {
        Path good = dir.resolve("good.qcow2");
        Images.create(good, CreateOptions.of(ImageFormat.QCOW2, 4 << 20).withClusterSize(4096));
        try (Qcow2Image q = (Qcow2Image) Images.open(good, Images.OpenOptions.readWrite())) {
            Random r = new Random(1);
            for (int i = 0; i < 40; i++) {
                byte[] b = new byte[3000];
                r.nextBytes(b);
                q.write(r.nextInt((4 << 20) - 3000), ByteBuffer.wrap(b));
            }
            q.createSnapshot("s");
            q.write(0, ByteBuffer.wrap(new byte[9000]));
        }
        byte[] pristine = Files.readAllBytes(good);
        Random r = new Random(42);
        Path bad = dir.resolve("bad.qcow2");
        for (int round = 0; round < 300; round++) {
            byte[] img = pristine.clone();
            int flips = 1 + r.nextInt(4);
            for (int k = 0; k < flips; k++) {
                int at = r.nextInt(Math.min(img.length, 16 * 4096)); // the metadata lives in the first clusters
                img[at] = (byte) r.nextInt(256);
            }
            Files.write(bad, img);
            int seedRound = round;
            Assertions.assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
                try (BlockBackend d = Images.open(bad, Images.OpenOptions.readOnly())) {
                    Disks.readAll(d);
                } catch (InvalidImageException | java.nio.file.NoSuchFileException expected) {
                    // a clear refusal is the right outcome
                }
                try {
                    ImageChecker.check(bad);
                } catch (InvalidImageException | java.nio.file.NoSuchFileException expected) {
                    // also fine
                }
            }, "round " + seedRound);
        }
    }
}
