package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.DamagedImages.Damaged;
import dev.panamax.storage.DamagedImages.Range;
import dev.panamax.storage.image.ImageConverter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code convert --salvage} on the damaged corpus ({@link DamagedImages}): every intact byte of the
 * pattern is copied exactly, the damaged ranges, and only they, are zeros and listed with their reason,
 * and without salvage the same conversion fails as before.
 */
class SalvageTest {
    @TempDir
    Path dir;

    private static final byte[] PATTERN = DamagedImages.pattern();

    @Test
    void overwrittenL1EntryLosesItsL2Range() throws Exception {
        salvageAndCompare(DamagedImages.overwrittenL1Entry(dir), ImageFormat.RAW);
    }

    @Test
    void badL2EntriesLoseTheirClustersOnly() throws Exception {
        salvageAndCompare(DamagedImages.badL2Entries(dir), ImageFormat.QCOW2);
    }

    @Test
    void truncatedZlibCluster() throws Exception {
        salvageAndCompare(DamagedImages.truncatedCompressedCluster(dir, "zlib"), ImageFormat.QCOW2);
    }

    @Test
    void truncatedZstdCluster() throws Exception {
        salvageAndCompare(DamagedImages.truncatedCompressedCluster(dir, "zstd"), ImageFormat.RAW);
    }

    @Test
    void vhdBlockPastTheEndOfTheFile() throws Exception {
        salvageAndCompare(DamagedImages.vhdBlockPastEof(dir), ImageFormat.QCOW2);
    }

    @Test
    void anIntactImageLosesNothing() throws Exception {
        Path image = DamagedImages.qcow2(dir, "intact.qcow2", "zstd");
        Path out = dir.resolve("intact.raw");
        ImageConverter.Result r = ImageConverter.convert(image, out,
                ImageConverter.Options.of(ImageFormat.RAW).withSalvage(true), null);
        assertThat(r.damaged()).isEmpty();
        assertThat(Files.readAllBytes(out)).isEqualTo(PATTERN);
    }

    /**
     * A compressed cluster that fails half-way leaves partial output in the image's decompression buffer;
     * the cluster decompressed before it must not be served from that buffer afterwards (salvage reads
     * it again after the failure).
     */
    @Test
    void aFailedDecompressionDoesNotSpoilTheClusterBefore() throws Exception {
        Path image = DamagedImages.qcow2(dir, "spoil.qcow2", "zlib");
        long at = DamagedImages.l2EntryAt(image, 4);
        int sectorsShift = 62 - (Integer.numberOfTrailingZeros(DamagedImages.CLUSTER) - 8);
        long e = DamagedImages.getLong(image, at);
        DamagedImages.putLong(image, at, e & ~(((1L << (62 - sectorsShift)) - 1) << sectorsShift)); // one sector of its data
        int cs = DamagedImages.CLUSTER;
        try (BlockBackend disk = dev.panamax.storage.image.Images.open(image,
                dev.panamax.storage.image.Images.OpenOptions.readOnly())) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(cs);
            disk.read(3L * cs, b);
            assertThat(b.array()).isEqualTo(Arrays.copyOfRange(PATTERN, 3 * cs, 4 * cs));
            assertThatThrownBy(() -> disk.read(4L * cs, java.nio.ByteBuffer.allocate(cs)))
                    .isInstanceOf(DamagedRangeException.class).hasMessageContaining("decompresses to");
            disk.read(3L * cs, b.clear());
            assertThat(b.array()).isEqualTo(Arrays.copyOfRange(PATTERN, 3 * cs, 4 * cs));
        }
    }

    /** Salvages into {@code format}, then checks the output byte for byte and the list of damage exactly. */
    private void salvageAndCompare(Damaged d, ImageFormat format) throws Exception {
        Path failed = dir.resolve("strict." + format.id());
        assertThatThrownBy(() -> ImageConverter.convert(d.image(), failed, ImageConverter.Options.of(format), null))
                .isInstanceOf(InvalidImageException.class);

        Path out = dir.resolve("salvaged." + format.id());
        ImageConverter.Result r = ImageConverter.convert(d.image(), out,
                ImageConverter.Options.of(format).withSalvage(true), null);
        assertThat(r.damaged()).hasSameSizeAs(d.ranges());
        for (int i = 0; i < d.ranges().size(); i++) {
            Range want = d.ranges().get(i);
            ImageConverter.Damage got = r.damaged().get(i);
            assertThat(got.offset()).as("damage %d", i).isEqualTo(want.offset());
            assertThat(got.length()).as("damage %d", i).isEqualTo(want.length());
            assertThat(got.reason()).contains(want.reason());
        }
        assertThat(r.bytesLost()).isEqualTo(d.ranges().stream().mapToLong(Range::length).sum());

        byte[] expected = PATTERN.clone();
        for (Range range : d.ranges()) Arrays.fill(expected, (int) range.offset(), (int) range.end(), (byte) 0);
        byte[] got = readDisk(out, format);
        assertThat(got.length).isGreaterThanOrEqualTo(PATTERN.length);
        assertThat(Arrays.mismatch(Arrays.copyOf(got, PATTERN.length), expected)).as("first differing byte").isEqualTo(-1);
        if (format == ImageFormat.QCOW2) {
            QemuImg.img("check", out.toString()).expectSuccess("qemu-img check of the salvaged image");
        }
        QemuImg.Result cmp = QemuImg.img("compare", "-f", format.id(), "-F", "raw", out.toString(), raw(expected).toString());
        assertThat(cmp.status()).as(cmp.out() + cmp.err()).isZero();
    }

    private Path raw(byte[] data) throws Exception {
        Path p = dir.resolve("expected.raw");
        Files.write(p, data);
        return p;
    }

    private static byte[] readDisk(Path image, ImageFormat format) throws Exception {
        try (BlockBackend disk = dev.panamax.storage.image.Images.open(image,
                dev.panamax.storage.image.Images.OpenOptions.readOnly().withFormat(format))) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate((int) disk.size());
            disk.read(0, b);
            return b.array();
        }
    }
}
