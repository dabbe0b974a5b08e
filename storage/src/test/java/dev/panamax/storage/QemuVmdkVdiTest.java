package dev.panamax.storage;

import static dev.panamax.storage.ImageAssertions.assertReadsInPieces;
import static dev.panamax.storage.ImageAssertions.assertSameBytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.image.ImageConverter;
import dev.panamax.storage.image.ImageInfo;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.vdi.VdiImage;
import dev.panamax.storage.vmdk.VmdkImage;
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
 * VMDK and VDI against qemu-img: every subformat qemu-img writes reads back byte for byte through
 * Panamax; images Panamax writes (monolithicSparse VMDK, dynamic and static VDI) pass {@code qemu-img
 * check} and read the same in QEMU.
 */
class QemuVmdkVdiTest {
    /** Not a whole number of grains or blocks: the last ones are partial. */
    private static final int SIZE = (6 << 20) + 3 * 512;

    @TempDir
    Path dir;

    /** Data, a hole, explicit zeros, scattered small writes, and data up to the last byte. */
    static byte[] pattern() {
        byte[] b = new byte[SIZE];
        Random rnd = new Random(7);
        byte[] chunk = new byte[1 << 20];
        rnd.nextBytes(chunk);
        System.arraycopy(chunk, 0, b, 0, chunk.length); // [0, 1 MiB): data; [1 MiB, 4 MiB): hole and zeros
        for (int i = 0; i < 20; i++) {
            int at = (4 << 20) + rnd.nextInt(1 << 20);
            byte[] small = new byte[1 + rnd.nextInt(5000)];
            rnd.nextBytes(small);
            System.arraycopy(small, 0, b, at, small.length);
        }
        for (int i = SIZE - 3000; i < SIZE; i++) b[i] = (byte) (i * 31 + 5);
        return b;
    }

    private Path raw(byte[] data) throws IOException {
        Path p = dir.resolve("pattern.raw");
        Files.write(p, data);
        return p;
    }

    private Path qemuConvert(Path raw, String format, String name, String... options) throws IOException {
        Path image = dir.resolve(name);
        List<String> args = new ArrayList<>(List.of("convert", "-f", "raw", "-O", format));
        args.addAll(List.of(options));
        args.addAll(List.of(raw.toString(), image.toString()));
        QemuImg.img(args.toArray(String[]::new)).expectSuccess("qemu-img convert to " + name);
        return image;
    }

    private static byte[] panamaxRead(Path image) throws IOException {
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly())) {
            return Disks.readAll(disk);
        }
    }

    private void qemuCompare(Path image, String format, Path raw) throws IOException {
        QemuImg.Result r = QemuImg.img("compare", "-f", format, "-F", "raw", image.toString(), raw.toString());
        assertThat(r.status()).as("qemu-img compare " + image + ":\n" + r.out() + r.err()).isZero();
    }

    private void qemuCheck(Path image, String format) throws IOException {
        QemuImg.Result r = QemuImg.img("check", "-f", format, image.toString());
        assertThat(r.status()).as("qemu-img check " + image + ":\n" + r.out() + r.err()).isZero();
    }

    @Test
    void everyVmdkSubformatQemuImgWritesReadsBackByteForByte() throws Exception {
        byte[] data = pattern();
        Path raw = raw(data);
        record Variant(String name, String subformat, String createType) {}
        for (Variant v : List.of(new Variant("sparse.vmdk", "monolithicSparse", "monolithicSparse"),
                new Variant("stream.vmdk", "streamOptimized", "streamOptimized"),
                new Variant("flat.vmdk", "monolithicFlat", "monolithicFlat"))) {
            Path image = qemuConvert(raw, "vmdk", v.name(), "-o", "subformat=" + v.subformat());
            assertThat(Images.probe(image)).as(v.name()).isEqualTo(ImageFormat.VMDK);
            assertSameBytes(panamaxRead(image), data, v.name());
            assertReadsInPieces(image, data, 12345);
            ImageInfo info = ImageInfo.read(image);
            assertThat(info.format()).isEqualTo(ImageFormat.VMDK);
            assertThat(info.virtualSize()).isEqualTo(SIZE);
            assertThat(info.vmdkCreateType()).as(v.name()).isEqualTo(v.createType());
            assertThat(info.vmdkExtents()).as(v.name()).isNotEmpty();
            assertThat(ImageChecker.check(image).isClean()).as(v.name()).isTrue();

            // From the image to qcow2 and raw with Panamax: QEMU reads the copies as the original.
            Path qcow2 = dir.resolve(v.name() + ".qcow2");
            ImageConverter.convert(image, qcow2, ImageConverter.Options.of(ImageFormat.QCOW2), null);
            qemuCompare(qcow2, "qcow2", raw);
            Path copy = dir.resolve(v.name() + ".raw");
            ImageConverter.convert(image, copy, ImageConverter.Options.of(ImageFormat.RAW), null);
            assertThat(Files.readAllBytes(copy)).isEqualTo(data);
        }
        // Only monolithicSparse is written; the others are refused for writing by name.
        for (String name : List.of("stream.vmdk", "flat.vmdk")) {
            assertThatThrownBy(() -> Images.open(dir.resolve(name), Images.OpenOptions.readWrite()))
                    .isInstanceOf(ReadOnlyImageException.class).hasMessageContaining("can only be opened read-only");
        }
    }

    @Test
    void vdiImagesQemuImgWritesReadBackByteForByte() throws Exception {
        byte[] data = pattern();
        Path raw = raw(data);
        for (String type : List.of("dynamic", "static")) {
            Path image = qemuConvert(raw, "vdi", type + ".vdi", "-o", "static=" + (type.equals("static") ? "on" : "off"));
            assertThat(Images.probe(image)).isEqualTo(ImageFormat.VDI);
            assertSameBytes(panamaxRead(image), data, type);
            assertReadsInPieces(image, data, 12345);
            ImageInfo info = ImageInfo.read(image);
            assertThat(info.vdiType()).isEqualTo(type);
            assertThat(info.clusterSize()).isEqualTo(VdiImage.DEFAULT_BLOCK);
            assertThat(info.virtualSize()).isEqualTo(SIZE);
            Path qcow2 = dir.resolve(type + ".qcow2");
            ImageConverter.convert(image, qcow2, ImageConverter.Options.of(ImageFormat.QCOW2), null);
            qemuCompare(qcow2, "qcow2", raw);
        }
    }

    @Test
    void vmdkPanamaxWritesPassesQemuImgCheckAndCompare() throws Exception {
        byte[] data = pattern();
        Path raw = raw(data);
        Path vmdk = dir.resolve("out.vmdk");
        ImageConverter.convert(raw, vmdk, ImageConverter.Options.of(ImageFormat.VMDK), null);
        qemuCheck(vmdk, "vmdk");
        qemuCompare(vmdk, "vmdk", raw);
        assertThat(ImageInfo.read(vmdk).vmdkCreateType()).isEqualTo("monolithicSparse");
        assertThat(Files.size(vmdk)).as("the hole and the zeros take no grains").isLessThan(SIZE / 2);

        // Writes across grains and into allocated and new grains, mirrored into a raw copy; QEMU reads the same.
        Random rnd = new Random(3);
        try (BlockBackend disk = Images.open(vmdk, Images.OpenOptions.readWrite())) {
            for (int i = 0; i < 40; i++) {
                int at = rnd.nextInt(SIZE - 200_000);
                byte[] w = new byte[1 + rnd.nextInt(200_000)];
                rnd.nextBytes(w);
                disk.write(at, ByteBuffer.wrap(w));
                System.arraycopy(w, 0, data, at, w.length);
            }
            disk.writeZeroes(100_000, 70_000);
            Arrays.fill(data, 100_000, 170_000, (byte) 0);
            assertSameBytes(Disks.readAll(disk), data, "after writes");
        }
        Files.write(raw, data);
        assertThat(ImageChecker.check(vmdk).problems()).as("grain tables and their redundant copies agree").isEmpty();
        qemuCheck(vmdk, "vmdk");
        qemuCompare(vmdk, "vmdk", raw);

        // An empty image created by Panamax, written by QEMU, reads as QEMU wrote it.
        Path created = dir.resolve("created.vmdk");
        Images.create(created, CreateOptions.of(ImageFormat.VMDK, 100L << 20));
        qemuCheck(created, "vmdk");
        QemuImg.io("vmdk", created, "write -P 0x5a 1000000 300000", "write -P 0x11 99000000 1048576").expectSuccess("qemu-io");
        qemuCheck(created, "vmdk");
        byte[] expected = new byte[100 << 20];
        Arrays.fill(expected, 1_000_000, 1_300_000, (byte) 0x5a);
        Arrays.fill(expected, 99_000_000, 99_000_000 + (1 << 20), (byte) 0x11);
        try (BlockBackend disk = Images.open(created, Images.OpenOptions.readOnly())) {
            assertThat(disk.size()).isEqualTo(100L << 20);
            assertSameBytes(Disks.readAll(disk), expected, "written by qemu-io");
        }
    }

    @Test
    void vdiPanamaxWritesPassesQemuImgCheckAndCompare() throws Exception {
        byte[] data = pattern();
        Path raw = raw(data);
        for (boolean fixed : new boolean[] {false, true}) {
            Path vdi = dir.resolve(fixed ? "static-out.vdi" : "dynamic-out.vdi");
            ImageConverter.convert(raw, vdi, ImageConverter.Options.of(ImageFormat.VDI).withVhdFixed(fixed), null);
            qemuCheck(vdi, "vdi");
            qemuCompare(vdi, "vdi", raw);
            assertThat(ImageInfo.read(vdi).vdiType()).isEqualTo(fixed ? "static" : "dynamic");
            byte[] mirror = data.clone();
            Random rnd = new Random(fixed ? 5 : 6);
            try (BlockBackend disk = Images.open(vdi, Images.OpenOptions.readWrite())) {
                for (int i = 0; i < 30; i++) {
                    int at = rnd.nextInt(SIZE - 300_000);
                    byte[] w = new byte[1 + rnd.nextInt(300_000)];
                    rnd.nextBytes(w);
                    disk.write(at, ByteBuffer.wrap(w));
                    System.arraycopy(w, 0, mirror, at, w.length);
                }
            }
            Path mirrorRaw = Files.write(dir.resolve("mirror.raw"), mirror);
            qemuCheck(vdi, "vdi");
            qemuCompare(vdi, "vdi", mirrorRaw);
        }
    }

    @Test
    void emptyDisksOfEveryKind() throws Exception {
        for (ImageFormat f : List.of(ImageFormat.VMDK, ImageFormat.VDI)) {
            Path mine = dir.resolve("empty-mine." + f.id());
            Images.create(mine, CreateOptions.of(f, 0));
            // qemu-img 7.2 cannot open an empty VMDK, even its own ("Unsupported image type"); Panamax lays it out the same.
            if (f == ImageFormat.VDI) qemuCheck(mine, f.id());
            Path theirs = dir.resolve("empty-qemu." + f.id());
            QemuImg.img("create", "-f", f.id(), theirs.toString(), "0").expectSuccess("qemu-img create");
            for (Path p : List.of(mine, theirs)) {
                try (BlockBackend disk = Images.open(p, Images.OpenOptions.readWrite())) {
                    assertThat(disk.size()).as(p.toString()).isZero();
                }
            }
        }
    }

    @Test
    void aQcow2OverAVmdkOrVdiReadsThrough() throws Exception {
        byte[] data = pattern();
        Path raw = raw(data);
        for (String format : List.of("vmdk", "vdi")) {
            Path base = qemuConvert(raw, format, "base." + format);
            Path overlay = dir.resolve("over-" + format + ".qcow2");
            QemuImg.img("create", "-f", "qcow2", "-b", base.getFileName().toString(), "-F", format, overlay.toString())
                    .expectSuccess("overlay");
            try (BlockBackend disk = Images.open(overlay, Images.OpenOptions.readOnly())) {
                assertThat(disk.backing().format()).isEqualTo(ImageFormat.parse(format));
                assertSameBytes(Disks.readAll(disk), data, "qcow2 over " + format);
            }
        }
        assertThat(VmdkImage.MAX_CREATE_SIZE).isEqualTo(2L << 40);
    }
}
