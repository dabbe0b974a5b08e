package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.image.ImageInfo;
import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Damaged and hostile VMDK and VDI files: each corruption of a header field, directory, table, map
 * entry or descriptor line gives an {@link InvalidImageException} sentence naming the file and the
 * structure, never a huge allocation, a loop or an unchecked exception; a descriptor cannot make
 * Panamax read a file outside its directory.
 */
class VmdkVdiHostileTest {
    private static final int SIZE = 4 << 20;

    @TempDir
    Path dir;

    private byte[] data() {
        byte[] b = new byte[SIZE];
        new Random(11).nextBytes(b);
        Arrays.fill(b, 1 << 20, 3 << 20, (byte) 0);
        return b;
    }

    /** A monolithicSparse VMDK (or a VDI) written by Panamax: grains at 0-1 MiB and 3-4 MiB. */
    private Path image(String name, ImageFormat format) throws IOException {
        Path p = dir.resolve(name);
        Images.create(p, CreateOptions.of(format, SIZE));
        byte[] d = data();
        try (BlockBackend disk = Images.open(p, Images.OpenOptions.readWrite())) {
            disk.write(0, ByteBuffer.wrap(d, 0, 1 << 20));
            disk.write(3 << 20, ByteBuffer.wrap(d, 3 << 20, 1 << 20));
        }
        return p;
    }

    private static void poke(Path file, long offset, Consumer<ByteBuffer> bytes) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        bytes.accept(b);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(b.flip(), offset);
        }
    }

    private static void le32(Path file, long offset, int v) throws IOException {
        poke(file, offset, b -> b.putInt(v));
    }

    private static void le64(Path file, long offset, long v) throws IOException {
        poke(file, offset, b -> b.putLong(v));
    }

    private static int readLe32(Path file, long offset) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel ch = FileChannel.open(file)) {
            ch.read(b, offset);
        }
        return b.getInt(0);
    }

    /** Opening and reading every byte fails with a sentence holding each fragment, and info and check say so too. */
    private static void assertInvalid(Path image, String... fragments) throws IOException {
        assertThatThrownBy(() -> {
            try (BlockBackend d = Images.open(image, Images.OpenOptions.readOnly())) {
                Disks.readAll(d);
            }
        }).as(image.toString()).isInstanceOf(InvalidImageException.class).hasMessageContaining(image.toString())
                .hasMessageContainingAll(fragments);
        assertThat(ImageChecker.check(image).isClean()).as(image + " checked").isFalse();
    }

    private Path copy(Path image, String name) throws IOException {
        return Files.copy(image, dir.resolve(name));
    }

    @Test
    void panamaxImagesAreSoundBeforeTheyAreDamaged() throws Exception {
        for (ImageFormat f : new ImageFormat[] {ImageFormat.VMDK, ImageFormat.VDI}) {
            Path p = image("sound." + f.id(), f);
            try (BlockBackend d = Images.open(p, Images.OpenOptions.readOnly())) {
                assertThat(Disks.readAll(d)).isEqualTo(data());
            }
            assertThat(ImageChecker.check(p).isClean()).isTrue();
        }
    }

    @Test
    void vmdkHeaderFields() throws Exception {
        Path good = image("good.vmdk", ImageFormat.VMDK);
        Path p = copy(good, "version.vmdk");
        le32(p, 4, 99);
        assertInvalid(p, "VMDK sparse extent version 99 is not supported");
        p = copy(good, "capacity.vmdk");
        le64(p, 12, 1L << 62);
        assertInvalid(p, "VMDK capacity of " + (1L << 62) + " sectors is invalid");
        p = copy(good, "grain.vmdk");
        le64(p, 20, 100);
        assertInvalid(p, "VMDK grain size of 100 sectors is invalid");
        p = copy(good, "grain-huge.vmdk");
        le64(p, 20, 1L << 40);
        assertInvalid(p, "VMDK grain size of " + (1L << 40) + " sectors is invalid");
        p = copy(good, "gtes.vmdk");
        le32(p, 44, 100_000);
        assertInvalid(p, "VMDK grain tables of 100000 entries are invalid");
        p = copy(good, "overhead.vmdk");
        le64(p, 64, 1L << 50);
        assertInvalid(p, "VMDK metadata size", "exceeds the file");
        p = copy(good, "descriptor.vmdk");
        le64(p, 28, 1L << 40);
        assertInvalid(p, "VMDK embedded descriptor", "lies outside the file");
        p = copy(good, "descriptor-negative.vmdk"); // found by DiskImageFuzzTest: a negative size passed the bounds check
        le64(p, 36, -1);
        assertInvalid(p, "VMDK embedded descriptor", "lies outside the file");
        p = copy(good, "newlines.vmdk");
        poke(p, 73, b -> b.put((byte) '\n').put((byte) ' ').put((byte) '\n').put((byte) '\n')); // CRLF turned to LF
        assertInvalid(p, "newline check characters are wrong", "text mode");
        p = copy(good, "truncated.vmdk");
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.truncate(300);
        }
        assertInvalid(p, "VMDK sparse header", "beyond the end of the file");
    }

    @Test
    void vmdkDirectoriesAndTables() throws Exception {
        Path good = image("good.vmdk", ImageFormat.VMDK);
        long gd = 512L * readLe32(good, 56);
        Path p = copy(good, "gd.vmdk");
        le64(p, 56, 1L << 40);
        assertInvalid(p, "VMDK grain directory", "lies outside the file");
        p = copy(good, "gd-entry.vmdk");
        le32(p, gd, 0x7fffffff);
        assertInvalid(p, "VMDK grain directory entry 0 puts a grain table at offset", "past the end of the file");
        p = copy(good, "rgd-entry.vmdk");
        le32(p, 512L * readLe32(good, 48), -2);
        assertInvalid(p, "VMDK redundant grain directory entry 0", "past the end of the file");
        long gt = 512L * readLe32(good, gd);
        p = copy(good, "gt-entry.vmdk");
        le32(p, gt + 4, 0x7ffffff0);
        assertInvalid(p, "VMDK grain table entry for grain 1 points at offset", "outside the data area");
        p = copy(good, "gt-into-metadata.vmdk");
        le32(p, gt + 8, 1); // the descriptor's sector: no grain lives there
        assertInvalid(p, "VMDK grain table entry for grain 2 points at offset 512");
        assertThatThrownBy(() -> {
            try (BlockBackend d = Images.open(dir.resolve("gt-into-metadata.vmdk"), Images.OpenOptions.readWrite())) {
                d.write(2 * 65536 + 10, ByteBuffer.wrap(new byte[100]));
            }
        }).as("nor is it written through").isInstanceOf(ImageCorruptException.class);
    }

    /** A streamOptimized VMDK from qemu-img, and one whose directory is in a footer, as VMware streams it. */
    @Test
    void vmdkStreams() throws Exception {
        byte[] d = data();
        Path raw = Files.write(dir.resolve("d.raw"), d);
        Path stream = dir.resolve("stream.vmdk");
        QemuImg.img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw.toString(), stream.toString())
                .expectSuccess("qemu-img convert");

        // The directory moved to a footer: the header says "at the end", the footer holds the real offset.
        Path footer = copy(stream, "footer.vmdk");
        byte[] header = new byte[512];
        try (FileChannel ch = FileChannel.open(footer, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ch.read(ByteBuffer.wrap(header), 0);
            long end = ch.size();
            ByteBuffer tail = ByteBuffer.allocate(1536).order(ByteOrder.LITTLE_ENDIAN);
            tail.putLong(0, 1).putInt(8, 0).putInt(12, 3); // footer marker
            tail.put(512, header);
            tail.putLong(1024, 0).putInt(1032, 0).putInt(1036, 0); // end of stream
            ch.write(tail, end);
        }
        le64(footer, 56, -1L);
        try (BlockBackend disk = Images.open(footer, Images.OpenOptions.readOnly())) {
            assertThat(Disks.readAll(disk)).isEqualTo(d);
        }
        Path noFooter = copy(footer, "no-footer.vmdk");
        try (FileChannel ch = FileChannel.open(noFooter, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 512); // the end-of-stream marker gone
        }
        assertInvalid(noFooter, "VMDK footer", "missing or damaged");

        // A grain marker claiming a huge size, and a grain whose zlib stream is garbage.
        long gd = 512L * readLe32(stream, 56);
        long grain0 = 512L * readLe32(stream, 512L * readLe32(stream, gd));
        Path size = copy(stream, "marker.vmdk");
        le32(size, grain0 + 8, 0x7fffffff);
        assertInvalid(size, "VMDK compressed grain 0", "bad marker");
        Path garbage = copy(stream, "zlib.vmdk");
        poke(garbage, grain0 + 12, b -> b.putLong(0x1122334455667788L));
        assertInvalid(garbage, "VMDK compressed grain 0", "not a valid zlib stream");
        Path lba = copy(stream, "lba.vmdk");
        le64(lba, grain0, 12345);
        assertInvalid(lba, "VMDK compressed grain 0", "bad marker (sector 12345");
    }

    private Path descriptor(String name, String extentLines) throws IOException {
        String text = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n"
                + extentLines + "\n\nddb.adapterType = \"ide\"\n";
        return Files.writeString(dir.resolve(name), text, StandardCharsets.ISO_8859_1);
    }

    @Test
    void vmdkDescriptorsStayInTheirDirectory() throws Exception {
        Path sub = Files.createDirectory(dir.resolve("sub"));
        byte[] secret = "host secret, not a disk".repeat(100).getBytes(StandardCharsets.US_ASCII);
        Files.write(dir.resolve("secret.bin"), Arrays.copyOf(secret, 4096));
        byte[] extent = new byte[8192];
        new Random(2).nextBytes(extent);
        Files.write(sub.resolve("extent.bin"), extent);

        Path absolute = Files.writeString(sub.resolve("absolute.vmdk"), "version=1\ncreateType=\"monolithicFlat\"\n"
                + "RW 8 FLAT \"" + dir.resolve("secret.bin") + "\" 0\n");
        assertInvalid(absolute, "VMDK extent file name '" + dir.resolve("secret.bin") + "' is an absolute path");
        Path up = Files.writeString(sub.resolve("up.vmdk"), "version=1\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"../secret.bin\" 0\n");
        assertInvalid(up, "VMDK extent file name '../secret.bin' leads out of the descriptor's directory");
        Path hidden = Files.writeString(sub.resolve("hidden.vmdk"),
                "version=1\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"./x/../../secret.bin\" 0\n");
        assertInvalid(hidden, "leads out of the descriptor's directory");
        Files.createSymbolicLink(sub.resolve("link.bin"), dir.resolve("secret.bin"));
        Path link = Files.writeString(sub.resolve("link.vmdk"), "version=1\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"link.bin\" 0\n");
        assertInvalid(link, "link.bin is a symbolic link leading out of the descriptor's directory");
        Path self = Files.writeString(sub.resolve("self.vmdk"), "version=1\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \".\" 0\n");
        assertInvalid(self, "leads out of the descriptor's directory");
        // Inside the directory, relative names are fine; the extent's data starts at its offset (4 sectors in).
        Path inside = Files.writeString(sub.resolve("inside.vmdk"),
                "version=1\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"extent.bin\" 4\nRW 4 ZERO\n");
        try (BlockBackend disk = Images.open(inside, Images.OpenOptions.readOnly())) {
            assertThat(disk.format()).isEqualTo(ImageFormat.VMDK);
            assertThat(disk.size()).isEqualTo(12 * 512);
            byte[] expected = new byte[12 * 512];
            System.arraycopy(extent, 4 * 512, expected, 0, 8 * 512);
            assertThat(Disks.readAll(disk)).isEqualTo(expected);
            assertThat(disk.extent(0, disk.size())).isEqualTo(new Extent(0, 8 * 512, Extent.Kind.DATA));
            assertThat(disk.extent(8 * 512, 4 * 512).kind()).isEqualTo(Extent.Kind.ZERO);
        }
        assertThat(ImageInfo.read(inside).vmdkExtents()).hasSize(2);
    }

    @Test
    void vmdkDescriptorLines() throws Exception {
        Files.write(dir.resolve("flat.bin"), new byte[8192]);
        assertInvalid(descriptor("garbage.vmdk", "RW 16 FLAT \"flat.bin\" 0\nthis is not a descriptor line"),
                "VMDK descriptor line 8 is neither a setting nor an extent: 'this is not a descriptor line'");
        assertInvalid(descriptor("huge.vmdk", "RW 99999999999999999 FLAT \"flat.bin\" 0"), "VMDK extent on descriptor line 7 has",
                "sectors (at most");
        assertInvalid(descriptor("overflow.vmdk", "RW 9999999999999999999 FLAT \"flat.bin\" 0"), "is too large");
        assertInvalid(descriptor("far-offset.vmdk", "RW 16 FLAT \"flat.bin\" 99999999999999999"),
                "VMDK extent on descriptor line 7 starts at sector 99999999999999999 of its file");
        assertInvalid(descriptor("truncated-extent.vmdk", "RW 32 FLAT \"flat.bin\" 0"), "holds 8192 bytes but the descriptor needs 16384",
                "truncated");
        assertInvalid(descriptor("missing.vmdk", "RW 16 FLAT \"gone.bin\" 0"), "gone.bin named by the descriptor does not exist");
        assertInvalid(descriptor("no-extents.vmdk", ""), "VMDK descriptor lists no extents");
        assertInvalid(descriptor("sparse-extent.vmdk", "RW 16 SPARSE \"flat.bin\""), "VMDK extent type SPARSE is not supported");
        assertInvalid(descriptor("no-name.vmdk", "RW 16 FLAT"), "VMDK FLAT extent on descriptor line 7 names no file");
        Path parent = Files.writeString(dir.resolve("child.vmdk"), "version=1\nparentCID=12345678\ncreateType=\"monolithicFlat\"\n"
                + "parentFileNameHint=\"base.vmdk\"\nRW 16 FLAT \"flat.bin\" 0\n");
        assertInvalid(parent, "VMDK image has a parent (parentCID 12345678)");
        Path split = Files.writeString(dir.resolve("split.vmdk"), "version=1\ncreateType=\"twoGbMaxExtentSparse\"\n"
                + "RW 16 SPARSE \"s001.vmdk\"\n");
        assertInvalid(split, "VMDK create type 'twoGbMaxExtentSparse' in a descriptor file is not supported");
        Path big = dir.resolve("big.vmdk");
        Files.write(big, ("version=1\n# " + "x".repeat(70_000) + "\n").getBytes(StandardCharsets.US_ASCII));
        assertInvalid(big, "VMDK descriptor file is", "more than a descriptor's 65536");
    }

    @Test
    void vdiHeaderFields() throws Exception {
        Path good = image("good.vdi", ImageFormat.VDI);
        Path p = copy(good, "version.vdi");
        le32(p, 0x44, 0x00020000);
        assertInvalid(p, "VDI version 2.0 is not supported");
        p = copy(good, "type.vdi");
        le32(p, 0x4c, 4);
        assertInvalid(p, "VDI image type 4 is not supported");
        p = copy(good, "sector.vdi");
        le32(p, 0x168, 4096);
        assertInvalid(p, "VDI sector size 4096 is not 512");
        p = copy(good, "block.vdi");
        le32(p, 0x178, 1000);
        assertInvalid(p, "VDI block size 1000 is invalid");
        p = copy(good, "extra.vdi");
        le32(p, 0x17c, 512);
        assertInvalid(p, "VDI blocks with 512 bytes of extra data are not supported");
        p = copy(good, "size.vdi");
        le64(p, 0x170, 1L << 60);
        assertInvalid(p, "VDI disk size " + (1L << 60) + " is invalid");
        p = copy(good, "few-blocks.vdi");
        le32(p, 0x180, 2);
        assertInvalid(p, "VDI block map has 2 entries but the disk needs 4");
        p = copy(good, "many-blocks.vdi");
        le32(p, 0x180, 0x7fffffff);
        assertInvalid(p, "VDI block map has 2147483647 entries", "Panamax maps at most");
        p = copy(good, "allocated.vdi");
        le32(p, 0x184, 1000);
        assertInvalid(p, "VDI header counts 1000 allocated blocks in a map of 4");
        p = copy(good, "map.vdi");
        le32(p, 0x154, 0x7ffffe00);
        assertInvalid(p, "VDI block map", "is misplaced");
        p = copy(good, "parent.vdi");
        le32(p, 0x1b8, 0x12345678);
        assertInvalid(p, "VDI image has a parent or link UUID");
        p = copy(good, "truncated.vdi");
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.truncate(100);
        }
        assertInvalid(p, "VDI header", "beyond the end of the file");
    }

    @Test
    void vdiBlockMapEntries() throws Exception {
        Path good = image("good.vdi", ImageFormat.VDI);
        int map = readLe32(good, 0x154);
        assertThat(readLe32(good, map)).isZero();
        assertThat(readLe32(good, map + 12)).isEqualTo(1);
        Path p = copy(good, "beyond.vdi");
        le32(p, map + 4, 7);
        assertInvalid(p, "VDI block map entry 1 names data block 7, but the header counts only 2 allocated blocks");
        p = copy(good, "shared.vdi");
        le32(p, map + 4, 0);
        assertInvalid(p, "VDI block map entries share data block 0");
        p = copy(good, "cut.vdi");
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 4096);
        }
        assertInvalid(p, "VDI data block 1 (for disk block 3) ends at offset", "past the end of the file");
        // A discarded block (0xfffffffe) reads as zeros, and is a zero extent.
        p = copy(good, "discarded.vdi");
        le32(p, map, 0xfffffffe);
        try (BlockBackend disk = Images.open(p, Images.OpenOptions.readOnly())) {
            byte[] all = Disks.readAll(disk);
            assertThat(Arrays.mismatch(all, 0, 1 << 20, new byte[1 << 20], 0, 1 << 20)).isEqualTo(-1);
            assertThat(disk.extent(0, SIZE).kind()).isEqualTo(Extent.Kind.ZERO);
            assertThat(disk.extent(1 << 20, SIZE - (1 << 20)).kind()).isEqualTo(Extent.Kind.UNALLOCATED);
        }
    }
}
