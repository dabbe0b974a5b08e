package dev.panamax.storage.qcow2;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.Disks;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.QemuImg;
import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One write over many whole clusters of every kind (new, owned in place, shared with a snapshot,
 * compressed, zero): Qcow2Image writes runs of them with one pwrite each, and every cluster must end
 * as the per-cluster rules leave it: the data reads back, the snapshot keeps its own, the image
 * passes Panamax's and qemu-img's check, and qemu-img reads the same bytes.
 */
class Qcow2BulkWriteTest {
    private static final int CLUSTER = 65536;
    private static final long SIZE = 8L << 20; // 128 clusters

    @TempDir
    Path dir;

    private static byte[] random(int length, long seed) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static void write(BlockBackend disk, byte[] model, long offset, byte[] data) throws IOException {
        disk.write(offset, ByteBuffer.wrap(data));
        System.arraycopy(data, 0, model, (int) offset, data.length);
    }

    private void assertImage(Path image, byte[] model) throws IOException {
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly())) {
            assertThat(Arrays.mismatch(Disks.readAll(disk), model)).as("first byte Panamax reads wrong").isEqualTo(-1);
        }
        assertThat(ImageChecker.check(image).problems()).isEmpty();
        QemuImg.Result check = QemuImg.img("check", "-f", "qcow2", image.toString());
        assertThat(check.status()).as(check.out() + check.err()).isZero();
        Path view = dir.resolve("view.raw");
        Files.deleteIfExists(view);
        QemuImg.img("convert", "-f", "qcow2", "-O", "raw", image.toString(), view.toString()).expectSuccess("convert");
        assertThat(Arrays.mismatch(Files.readAllBytes(view), model)).as("first byte qemu-img reads wrong").isEqualTo(-1);
    }

    @Test
    void oneWriteOverClustersOfEveryKindLeavesEachAsItsOwnRuleSays() throws Exception {
        Path image = dir.resolve("mixed.qcow2");
        Images.create(image, CreateOptions.of(ImageFormat.QCOW2, SIZE));
        byte[] model = new byte[(int) SIZE];
        byte[] before;
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readWrite())) {
            Qcow2Image q = (Qcow2Image) disk;
            write(disk, model, 0, random(20 * CLUSTER, 1)); // clusters 0-19: then shared with the snapshot
            q.createSnapshot("before");
            before = model.clone();
            write(disk, model, 20L * CLUSTER, random(10 * CLUSTER, 2)); // 20-29: owned, written in place
            for (int c = 30; c < 40; c++) { // 30-39: compressed
                byte[] cluster = new byte[CLUSTER];
                Arrays.fill(cluster, (byte) c);
                q.writeCompressed((long) c * CLUSTER, cluster, CLUSTER);
                System.arraycopy(cluster, 0, model, c * CLUSTER, CLUSTER);
            }
            disk.writeZeroes(40L * CLUSTER, 10L * CLUSTER); // 40-49: zero; 50-127: never written
            Arrays.fill(model, 40 * CLUSTER, 50 * CLUSTER, (byte) 0);

            // From the middle of cluster 10 to the middle of cluster 70: a partial cluster at each end.
            write(disk, model, 10L * CLUSTER + 4096, random(60 * CLUSTER, 3));
        }
        assertImage(image, model);

        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readWrite())) {
            ((Qcow2Image) disk).applySnapshot("before");
        }
        Arrays.fill(before, 20 * CLUSTER, before.length, (byte) 0);
        assertImage(image, before);
    }

    @Test
    void rewritingOwnedClustersStaysInPlaceAndNewOnesTakeOneContiguousRun() throws Exception {
        Path image = dir.resolve("inplace.qcow2");
        Images.create(image, CreateOptions.of(ImageFormat.QCOW2, SIZE));
        byte[] model = new byte[(int) SIZE];
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readWrite())) {
            write(disk, model, 0, random(32 * CLUSTER, 4));
        }
        long size = Files.size(image);
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readWrite())) {
            write(disk, model, 0, random(32 * CLUSTER, 5));
        }
        assertThat(Files.size(image)).as("a rewrite of owned clusters allocates nothing").isEqualTo(size);
        assertImage(image, model);

        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readWrite())) {
            write(disk, model, 64L * CLUSTER, random(32 * CLUSTER, 6)); // new clusters after owned ones
            write(disk, model, 16L * CLUSTER, random(64 * CLUSTER, 7)); // owned 16-31, a hole 32-63, owned 64-79
        }
        assertImage(image, model);
    }
}
