package dev.panamax.storage.qcow2;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.github.luben.zstd.Zstd;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CheckReport;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.Disks;
import dev.panamax.storage.ImageCorruptException;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.Qcow2Compression;
import dev.panamax.storage.QemuImg;
import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.image.ImageConverter;
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
 * qcow2 compression type zstd: images qemu-img compresses with zstd read back equal, images Panamax
 * compresses pass qemu-img check and compare, and damaged zstd clusters are a clear corruption error.
 */
class Qcow2ZstdTest {
    private static final int CLUSTER = 65536;

    @TempDir
    Path dir;

    /** Compressible data with some incompressible 4 KiB blocks, so both kinds of cluster occur. */
    private static byte[] mixedData(int size, long seed) {
        byte[] data = new byte[size];
        Random rnd = new Random(seed);
        for (int i = 0; i < size; i += 4096) {
            int n = Math.min(4096, size - i);
            if (rnd.nextInt(4) == 0) {
                byte[] chunk = new byte[n];
                rnd.nextBytes(chunk);
                System.arraycopy(chunk, 0, data, i, n);
            } else {
                Arrays.fill(data, i, i + n, (byte) rnd.nextInt(3));
            }
        }
        return data;
    }

    private static byte[] panamaxRead(Path image) throws IOException {
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly())) {
            return Disks.readAll(disk);
        }
    }

    private static void qemuCheckClean(Path image) throws IOException {
        QemuImg.Result r = QemuImg.img("check", "-f", "qcow2", image.toString());
        assertThat(r.status()).as("qemu-img check:\n" + r.out() + r.err()).isZero();
    }

    private static void assertSame(byte[] actual, byte[] expected, String what) {
        assertThat(actual.length).as(what + " size").isEqualTo(expected.length);
        assertThat(Arrays.mismatch(actual, expected)).as(what + ": first differing byte").isEqualTo(-1);
    }

    @Test
    void imagesQemuCompressesWithZstdReadBackEqualAndStayWritable() throws Exception {
        byte[] data = mixedData(6 << 20, 1);
        Path raw = dir.resolve("src.raw");
        Files.write(raw, data);
        Path qc = dir.resolve("qemu-zstd.qcow2");
        QemuImg.img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd", raw.toString(), qc.toString())
                .expectSuccess("qemu-img convert -c -o compression_type=zstd");
        assertThat(QemuImg.img("info", qc.toString()).out()).contains("compression type: zstd");

        assertThat(ImageInfo.read(qc).compression()).isEqualTo(Qcow2Compression.ZSTD);
        assertSame(panamaxRead(qc), data, "qemu's zstd image read by Panamax");
        CheckReport report = ImageChecker.check(qc);
        assertThat(report.problems()).as("Panamax check of qemu's zstd image").isEmpty();

        // Writes into compressed clusters copy them out; new compressed clusters are zstd too.
        try (BlockBackend q = Images.open(qc, Images.OpenOptions.readWrite())) {
            q.write(70000, ByteBuffer.wrap(new byte[] {9, 9, 9}));
            q.discard(1 << 20, 1 << 20);
            byte[] cluster = new byte[CLUSTER];
            Arrays.fill(cluster, (byte) 7);
            ((Qcow2Image) q).writeCompressed(3L << 20, cluster, CLUSTER);
        }
        data[70000] = data[70001] = data[70002] = 9;
        Arrays.fill(data, 1 << 20, 2 << 20, (byte) 0);
        Arrays.fill(data, 3 << 20, (3 << 20) + CLUSTER, (byte) 7);
        qemuCheckClean(qc);
        Path qemuView = dir.resolve("view.raw");
        QemuImg.img("convert", "-f", "qcow2", "-O", "raw", qc.toString(), qemuView.toString()).expectSuccess("convert");
        assertSame(Files.readAllBytes(qemuView), data, "qemu's read after Panamax wrote");
        assertSame(panamaxRead(qc), data, "Panamax's read after it wrote");
    }

    @Test
    void imagesPanamaxCompressesWithZstdPassQemuCheckAndCompare() throws Exception {
        byte[] data = mixedData(6 << 20 | 12345, 2); // a short last cluster too
        Path raw = dir.resolve("src.raw");
        Files.write(raw, data);
        Path zstd = dir.resolve("panamax-zstd.qcow2"), zlib = dir.resolve("panamax-zlib.qcow2");
        ImageConverter.convert(raw, zstd, ImageConverter.Options.of(ImageFormat.QCOW2).withCompress(true)
                .withCompression(Qcow2Compression.ZSTD), null);
        ImageConverter.convert(raw, zlib, ImageConverter.Options.of(ImageFormat.QCOW2).withCompress(true), null);

        qemuCheckClean(zstd);
        QemuImg.img("compare", "-f", "raw", "-F", "qcow2", raw.toString(), zstd.toString()).expectSuccess("qemu-img compare");
        assertThat(QemuImg.img("info", zstd.toString()).out()).contains("compression type: zstd");
        assertThat(QemuImg.img("check", zstd.toString()).out()).containsPattern("[1-9][0-9.]*% compressed clusters");
        assertThat(ImageChecker.check(zstd).problems()).isEmpty();
        assertSame(panamaxRead(zstd), data, "Panamax's read of its zstd image");
        assertThat(ImageInfo.read(zlib).compression()).isEqualTo(Qcow2Compression.ZLIB);
        assertThat(Files.size(zstd)).isLessThan(data.length / 2);
    }

    @Test
    void createRecordsTheCompressionTypeAndRefusesItWhereItCannotBe() throws Exception {
        Path p = dir.resolve("z.qcow2");
        Images.create(p, CreateOptions.of(ImageFormat.QCOW2, 1 << 20).withCompression(Qcow2Compression.ZSTD));
        assertThat(ImageInfo.read(p).compression()).isEqualTo(Qcow2Compression.ZSTD);
        assertThat(QemuImg.img("info", p.toString()).out()).contains("compression type: zstd");
        qemuCheckClean(p);
        assertThatThrownBy(() -> Images.create(dir.resolve("v2.qcow2"), CreateOptions.of(ImageFormat.QCOW2, 1 << 20)
                .withQcow2Version(2).withCompression(Qcow2Compression.ZSTD)))
                .isInstanceOf(ImageRequestException.class).hasMessageContaining("version 3");
        assertThatThrownBy(() -> ImageConverter.convert(p, dir.resolve("out.raw"), ImageConverter.Options.of(ImageFormat.RAW)
                .withCompression(Qcow2Compression.ZSTD), null))
                .isInstanceOf(ImageRequestException.class).hasMessageContaining("qcow2 options");
    }

    // ---------------------------------------------------------------- damaged zstd clusters

    /** A zstd image whose only data is one compressed cluster at guest offset 0; returns where its frame starts. */
    private long oneZstdCluster(Path p, byte[] cluster) throws IOException {
        Images.create(p, CreateOptions.of(ImageFormat.QCOW2, 4 * CLUSTER).withCompression(Qcow2Compression.ZSTD));
        try (BlockBackend d = Images.open(p, Images.OpenOptions.readWrite())) {
            ((Qcow2Image) d).writeCompressed(0, cluster, CLUSTER);
        }
        byte[] file = Files.readAllBytes(p);
        for (int i = CLUSTER; i + 4 <= file.length; i++) { // the zstd magic 0xFD2FB528, little-endian
            if ((file[i] & 0xff) == 0x28 && (file[i + 1] & 0xff) == 0xb5 && (file[i + 2] & 0xff) == 0x2f
                    && (file[i + 3] & 0xff) == 0xfd) {
                return i;
            }
        }
        throw new AssertionError("no zstd frame in " + p);
    }

    private static byte[] halfRandom() {
        byte[] cluster = new byte[CLUSTER];
        byte[] noise = new byte[CLUSTER / 2];
        new Random(3).nextBytes(noise);
        System.arraycopy(noise, 0, cluster, 0, noise.length);
        return cluster;
    }

    private static void overwrite(Path p, long offset, byte[] bytes) throws IOException {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(bytes), offset);
        }
    }

    private static void assertCorruptRead(Path p, String... fragments) {
        assertThatThrownBy(() -> panamaxRead(p)).isInstanceOf(ImageCorruptException.class)
                .hasMessageContainingAll(fragments);
    }

    @Test
    void zstdClusterRunningPastTheEndOfTheFileIsCorrupt() throws Exception {
        Path p = dir.resolve("cut.qcow2");
        long frame = oneZstdCluster(p, halfRandom());
        assertSame(panamaxRead(p), Arrays.copyOf(halfRandom(), 4 * CLUSTER), "intact image");
        long size = Files.size(p);
        assertThat(size - frame).as("compressed bytes at the end of the file").isGreaterThan(CLUSTER / 4);
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.truncate(size - 1000);
        }
        assertCorruptRead(p, "zstd-compressed cluster for guest offset 0", "not valid zstd data", "corrupt");
    }

    @Test
    void zstdGarbageIsCorrupt() throws Exception {
        Path p = dir.resolve("garbage.qcow2");
        long frame = oneZstdCluster(p, halfRandom());
        byte[] garbage = new byte[64];
        new Random(4).nextBytes(garbage);
        overwrite(p, frame, garbage);
        assertCorruptRead(p, "guest offset 0", "not valid zstd data");
    }

    @Test
    void zstdFramesOfTheWrongSizeAreCorrupt() throws Exception {
        Path shorter = dir.resolve("short.qcow2");
        long frame = oneZstdCluster(shorter, halfRandom());
        byte[] small = Zstd.compress(new byte[1000]);
        overwrite(shorter, frame, small);
        try (FileChannel ch = FileChannel.open(shorter, StandardOpenOption.WRITE)) { // else the old frame's tail follows
            ch.truncate(frame + small.length);
        }
        assertCorruptRead(shorter, "guest offset 0", "decompresses to 1000 bytes instead of 65536");

        Path longer = dir.resolve("long.qcow2");
        frame = oneZstdCluster(longer, halfRandom());
        overwrite(longer, frame, Zstd.compress(new byte[2 * CLUSTER]));
        assertCorruptRead(longer, "guest offset 0", "not valid zstd data", "does not decompress into the 65536 bytes");
    }

    @Test
    void headerCompressionFieldIsValidated() throws Exception {
        Path p = dir.resolve("h.qcow2");
        Images.create(p, CreateOptions.of(ImageFormat.QCOW2, 1 << 20));
        overwrite(p, 104, new byte[] {2});
        assertThatThrownBy(() -> panamaxRead(p)).isInstanceOf(InvalidImageException.class)
                .hasMessageContaining("compression type 2 is not known");
        overwrite(p, 104, new byte[] {1}); // zstd without incompatible feature bit 3
        assertThatThrownBy(() -> panamaxRead(p)).isInstanceOf(InvalidImageException.class)
                .hasMessageContaining("compression type is zstd but incompatible feature bit 3 (compression type) is not set");
    }
}
