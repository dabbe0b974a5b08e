package dev.panamax.storage;

import static dev.panamax.storage.ImageAssertions.assertReadsInPieces;
import static dev.panamax.storage.ImageAssertions.assertSameBytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.image.ImageConverter;
import dev.panamax.storage.image.ImageInfo;
import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * VHDX against qemu-img: dynamic and fixed images in 1 MiB and 32 MiB blocks, converted by qemu-img from
 * a raw pattern, read back byte for byte through Panamax, and converted by Panamax into images QEMU
 * compares equal to the pattern.
 */
class QemuVhdxTest {
    /** Three 32 MiB blocks, the last one partial and the middle one a hole; not a whole number of MiB either. */
    private static final int SIZE = (70 << 20) + 3 * 512;

    @TempDir
    Path dir;

    /** Data, a hole, scattered small writes, data in the last (partial) block up to the last byte. */
    static byte[] pattern() {
        byte[] b = new byte[SIZE];
        Random rnd = new Random(11);
        byte[] chunk = new byte[1 << 20];
        rnd.nextBytes(chunk);
        System.arraycopy(chunk, 0, b, 0, chunk.length); // [0, 1 MiB): data; [1 MiB, 4 MiB): zeros
        for (int i = 0; i < 20; i++) {
            int at = (4 << 20) + rnd.nextInt(1 << 20);
            byte[] small = new byte[1 + rnd.nextInt(5000)];
            rnd.nextBytes(small);
            System.arraycopy(small, 0, b, at, small.length);
        }
        // [32 MiB, 64 MiB) stays zero: a whole 32 MiB block qemu-img leaves unallocated.
        rnd.nextBytes(chunk);
        System.arraycopy(chunk, 0, b, (66 << 20) + 12345, 100_000);
        for (int i = SIZE - 3000; i < SIZE; i++) b[i] = (byte) (i * 31 + 5);
        return b;
    }

    private Path qemuConvert(Path raw, String name, String... options) throws IOException {
        Path image = dir.resolve(name);
        List<String> args = new ArrayList<>(List.of("convert", "-f", "raw", "-O", "vhdx"));
        args.addAll(List.of(options));
        args.addAll(List.of(raw.toString(), image.toString()));
        QemuImg.img(args.toArray(String[]::new)).expectSuccess("qemu-img convert to " + name);
        return image;
    }

    private static void qemuCompare(Path image, String format, Path raw) throws IOException {
        QemuImg.Result r = QemuImg.img("compare", "-f", format, "-F", "raw", image.toString(), raw.toString());
        assertThat(r.status()).as("qemu-img compare " + image + ":\n" + r.out() + r.err()).isZero();
    }

    @Test
    void dynamicAndFixedImagesInSmallAndLargeBlocksReadBackByteForByte() throws Exception {
        byte[] data = pattern();
        Path raw = Files.write(dir.resolve("pattern.raw"), data);
        for (String subformat : List.of("dynamic", "fixed")) {
            for (int blockMiB : new int[] {1, 32}) {
                String name = subformat + "-" + blockMiB + "M.vhdx";
                Path image = qemuConvert(raw, name, "-o", "subformat=" + subformat + ",block_size=" + blockMiB + "M");
                assertThat(Images.probe(image)).as(name).isEqualTo(ImageFormat.VHDX);
                try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly().withLock())) {
                    assertThat(disk.format()).isEqualTo(ImageFormat.VHDX);
                    assertThat(disk.isReadOnly()).isTrue();
                    assertSameBytes(Disks.readAll(disk), data, name);
                    if (subformat.equals("dynamic") && blockMiB == 32) {
                        // qemu-img (block_state_zero=on, its default) leaves the zero block in the ZERO state.
                        assertThat(disk.extent(32 << 20, 32 << 20).kind()).as("the zero block qemu-img left out")
                                .isEqualTo(Extent.Kind.ZERO);
                    }
                }
                assertReadsInPieces(image, data, 1234567);
                ImageInfo info = ImageInfo.read(image);
                assertThat(info.format()).isEqualTo(ImageFormat.VHDX);
                assertThat(info.virtualSize()).isEqualTo(SIZE);
                assertThat(info.clusterSize()).as(name + " block size").isEqualTo(blockMiB << 20);
                assertThat(info.vhdxType()).isEqualTo(subformat);
                assertThat(info.logicalSectorSize()).isEqualTo(512);
                assertThat(ImageChecker.check(image).problems()).as(name).isEmpty();

                // From the image to qcow2 and raw with Panamax: QEMU reads the copies as the original.
                Path qcow2 = dir.resolve(name + ".qcow2");
                ImageConverter.convert(image, qcow2, ImageConverter.Options.of(ImageFormat.QCOW2), null);
                qemuCompare(qcow2, "qcow2", raw);
                Path copy = dir.resolve(name + ".raw");
                ImageConverter.convert(image, copy, ImageConverter.Options.of(ImageFormat.RAW), null);
                qemuCompare(copy, "raw", raw);
                Files.delete(qcow2);
                Files.delete(copy);
            }
        }
    }

    /**
     * A fixed image qemu-img creates has every block in the ZERO state (space set aside, nothing written);
     * the blocks qemu-io then writes are FULLY_PRESENT. Both read as QEMU reads them.
     */
    @Test
    void zeroStateBlocksOfAFixedImageReadAsZeros() throws Exception {
        Path image = dir.resolve("fixed.vhdx");
        QemuImg.img("create", "-f", "vhdx", "-o", "subformat=fixed,block_size=1M", image.toString(), "8M")
                .expectSuccess("qemu-img create");
        QemuImg.io("vhdx", image, "write -P 0x5a 2500000 300000", "write -P 0x11 7340032 1048576").expectSuccess("qemu-io");
        byte[] expected = new byte[8 << 20];
        Arrays.fill(expected, 2_500_000, 2_800_000, (byte) 0x5a);
        Arrays.fill(expected, 7 << 20, 8 << 20, (byte) 0x11);
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly())) {
            assertSameBytes(Disks.readAll(disk), expected, "written by qemu-io");
            assertThat(disk.extent(0, 8 << 20)).isEqualTo(new Extent(0, 2 << 20, Extent.Kind.ZERO));
            assertThat(disk.extent(2 << 20, 6 << 20)).isEqualTo(new Extent(2 << 20, 1 << 20, Extent.Kind.DATA));
            assertThat(disk.extent(3 << 20, 5 << 20)).isEqualTo(new Extent(3 << 20, 4 << 20, Extent.Kind.ZERO));
            assertThat(disk.extent(7 << 20, 1 << 20)).isEqualTo(new Extent(7 << 20, 1 << 20, Extent.Kind.DATA));
        }
        assertThat(ImageInfo.read(image).vhdxType()).isEqualTo("fixed");
        assertReadsInPieces(image, expected, 1234567);
    }

    /**
     * In 256 MiB blocks of 512-byte sectors, a sector bitmap entry follows every 16 payload entries: the
     * block qemu-io writes at 4 GiB is BAT entry 17, and Panamax finds it there.
     */
    @Test
    void aBlockAfterASectorBitmapEntryIsWhereQemuPutIt() throws Exception {
        Path image = dir.resolve("big.vhdx");
        QemuImg.img("create", "-f", "vhdx", "-o", "block_size=256M", image.toString(), "5G").expectSuccess("qemu-img create");
        QemuImg.io("vhdx", image, "write -P 0x5a 4294967296 65536", "write -P 0x11 0 4096").expectSuccess("qemu-io");
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly())) {
            byte[] expected = new byte[65536];
            Arrays.fill(expected, (byte) 0x5a);
            ByteBuffer got = ByteBuffer.allocate(65536);
            disk.read(4L << 30, got);
            assertSameBytes(got.array(), expected, "at 4 GiB");
            got.clear();
            disk.read((4L << 30) - 65536, got);
            assertSameBytes(got.array(), new byte[65536], "before 4 GiB");
            assertThat(disk.extent(4L << 30, 1L << 30)).isEqualTo(new Extent(4L << 30, 256 << 20, Extent.Kind.DATA));
            assertThat(disk.extent(256 << 20, 4L << 30).kind()).isNotEqualTo(Extent.Kind.DATA);
            assertThat(disk.extent(0, 1L << 30).kind()).isEqualTo(Extent.Kind.DATA);
        }
    }

    @Test
    void vhdxIsReadOnly() throws Exception {
        Path image = dir.resolve("empty.vhdx");
        QemuImg.img("create", "-f", "vhdx", image.toString(), "64M").expectSuccess("qemu-img create");
        assertThatThrownBy(() -> Images.open(image, Images.OpenOptions.readWrite())).isInstanceOf(ReadOnlyImageException.class)
                .hasMessage(image + ": VHDX images can only be opened read-only (attach the disk read-only, or convert it to"
                        + " qcow2 with 'panamax image convert' to write to it)");
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly())) {
            assertThat(disk.size()).isEqualTo(64 << 20);
            assertThat(disk.extent(0, disk.size())).as("qemu-img create leaves every block ZERO")
                    .isEqualTo(new Extent(0, 64 << 20, Extent.Kind.ZERO));
            assertThatThrownBy(() -> disk.write(0, ByteBuffer.allocate(512))).isInstanceOf(ReadOnlyImageException.class);
        }
        assertThatThrownBy(() -> Images.create(dir.resolve("new.vhdx"), CreateOptions.of(ImageFormat.VHDX, 1 << 20)))
                .isInstanceOf(ImageRequestException.class).hasMessageContaining("does not create them");
        Path empty = dir.resolve("zero.vhdx");
        QemuImg.img("create", "-f", "vhdx", empty.toString(), "0").expectSuccess("qemu-img create");
        try (BlockBackend disk = Images.open(empty, Images.OpenOptions.readOnly())) {
            assertThat(disk.size()).isZero();
        }
    }
}
