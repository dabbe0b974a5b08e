package dev.panamax.storage.qcow2;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CheckReport;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Finding the refcounts that are not 0 a block's bytes at a time, as check does past the file's end. */
class RefcountScanTest {
    private static final int ENTRIES = 256;

    @Test
    void theFirstNonZeroEntryOfARangeIsFoundAtEveryWidth() {
        for (int bits : new int[] {1, 2, 4, 8, 16, 32, 64}) {
            for (int k : new int[] {0, 1, 7, 8, 9, 100, ENTRIES - 1}) {
                byte[] d = new byte[ENTRIES * bits / 8];
                Refcounts.write(d, k, 1, bits);
                String at = bits + "-bit entries, entry " + k + " set";
                assertThat(Refcounts.firstNonZero(d, 0, ENTRIES - 1, bits)).as(at).isEqualTo(k);
                assertThat(Refcounts.firstNonZero(d, k, k, bits)).as(at + ", the range of it alone").isEqualTo(k);
                if (k > 0) assertThat(Refcounts.firstNonZero(d, 0, k - 1, bits)).as(at + ", the range before it").isEqualTo(-1);
                if (k < ENTRIES - 1) assertThat(Refcounts.firstNonZero(d, k + 1, ENTRIES - 1, bits)).as(at + ", the range after it").isEqualTo(-1);
                Refcounts.write(d, ENTRIES - 1, 1, bits);
                assertThat(Refcounts.firstNonZero(d, k, ENTRIES - 1, bits)).as(at + " and the last").isEqualTo(k);
            }
        }
    }

    @Test
    void checkReportsEachRefcountPastTheFilesEndUpToItsBlocksEnd(@TempDir Path dir) throws IOException {
        Path image = dir.resolve("tail.qcow2");
        Images.create(image, CreateOptions.of(ImageFormat.QCOW2, 64L << 20));
        int clusterBits = 16;
        int perBlock = (1 << clusterBits) * 8 / 16; // 16-bit refcounts, the default
        try (FileChannel f = FileChannel.open(image, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long table = readLong(f, 48);
            long block = readLong(f, table);
            for (int cluster : new int[] {1000, perBlock - 1}) {
                f.write(ByteBuffer.wrap(new byte[] {0, 1}), block + 2L * cluster);
            }
        }
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly().withFormat(ImageFormat.QCOW2))) {
            CheckReport report = Qcow2Check.check((Qcow2Image) disk);
            assertThat(report.corruptions()).as("%s", report.problems()).isZero();
            assertThat(report.leaks()).as("%s", report.problems()).isEqualTo(2);
            assertThat(report.problems()).extracting(CheckReport.Problem::message).containsExactly(
                    "cluster at offset 0x" + Long.toHexString(1000L << clusterBits) + " has refcount 1 but 0 references (leaked)",
                    "cluster at offset 0x" + Long.toHexString((long) (perBlock - 1) << clusterBits) + " has refcount 1 but 0 references (leaked)");
        }
    }

    private static long readLong(FileChannel f, long at) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8);
        f.read(b, at);
        return b.flip().getLong();
    }
}
