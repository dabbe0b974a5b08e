package dev.panamax.storage;

import static dev.panamax.storage.VhdxFiles.BAT;
import static dev.panamax.storage.VhdxFiles.DATA;
import static dev.panamax.storage.VhdxFiles.METADATA;
import static dev.panamax.storage.VhdxFiles.MiB;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

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
 * Damaged and hostile VHDX files: each corruption of a header, region table, metadata item or BAT entry
 * gives an {@link InvalidImageException} sentence naming the file and the structure, never a huge
 * allocation, a loop or an unchecked exception.
 */
class VhdxHostileTest {
    /** Four 1 MiB blocks: data, zeros, zeros, data. */
    private static final int SIZE = 4 << 20;

    @TempDir
    Path dir;

    private static byte[] data() {
        byte[] b = new byte[SIZE];
        new Random(13).nextBytes(b);
        Arrays.fill(b, 1 << 20, 3 << 20, (byte) 0);
        return b;
    }

    /** Blocks 0 and 3 present at {@link VhdxFiles#DATA} and one MiB after it; blocks 1 and 2 not present. */
    private Path image(String name) throws IOException {
        return VhdxFiles.write(dir.resolve(name), data(), 1 << 20, false);
    }

    private Path copy(Path image, String name) throws IOException {
        return Files.copy(image, dir.resolve(name));
    }

    /** Opening and reading every byte fails with a sentence holding each fragment, info fails, and check reports it. */
    private static void assertInvalid(Path image, String... fragments) throws IOException {
        assertThatThrownBy(() -> {
            try (BlockBackend d = Images.open(image, Images.OpenOptions.readOnly())) {
                Disks.readAll(d);
            }
        }).as(image.toString()).isInstanceOf(InvalidImageException.class).hasMessageStartingWith(image + ": ")
                .hasMessageContainingAll(fragments);
        assertThatThrownBy(() -> ImageInfo.read(image)).isInstanceOf(InvalidImageException.class);
        assertThat(ImageChecker.check(image).isClean()).as(image + " checked").isFalse();
    }

    private static void assertReadsData(Path image) throws IOException {
        try (BlockBackend d = Images.open(image, Images.OpenOptions.readOnly())) {
            assertThat(Arrays.mismatch(Disks.readAll(d), data())).as(image + ": first differing byte").isEqualTo(-1);
        }
    }

    @Test
    void theTestImageIsSoundAndQemuReadsItTheSame() throws Exception {
        Path p = image("sound.vhdx");
        assertReadsData(p);
        assertThat(ImageChecker.check(p).isClean()).isTrue();
        ImageInfo info = ImageInfo.read(p);
        assertThat(info.vhdxType()).isEqualTo("dynamic");
        assertThat(info.clusterSize()).isEqualTo(1 << 20);
        Path raw = Files.write(dir.resolve("data.raw"), data());
        QemuImg.img("compare", "-f", "vhdx", "-F", "raw", p.toString(), raw.toString()).expectSuccess("qemu-img compare");
        QemuImg.img("check", "-f", "vhdx", p.toString()).expectSuccess("qemu-img check");
    }

    @Test
    void headers() throws Exception {
        Path good = image("good.vhdx");
        Path p = copy(good, "both-bad-crc.vhdx");
        VhdxFiles.poke(p, VhdxFiles.HEADER_1 + 4, b -> b.putInt(0x12345678));
        VhdxFiles.poke(p, VhdxFiles.HEADER_2 + 4, b -> b.putInt(0x12345678));
        assertInvalid(p, "neither VHDX header is valid (header 1 has a bad checksum, header 2 has a bad checksum)");

        p = copy(good, "current-bad.vhdx"); // header 2 (sequence 2) is current; when damaged, header 1 serves
        VhdxFiles.poke(p, VhdxFiles.HEADER_2 + 100, b -> b.put((byte) 1));
        assertReadsData(p);

        // The header with the higher sequence number is the one used: here only the older one names a misplaced log.
        p = copy(good, "old-header-damaged.vhdx");
        VhdxFiles.rewrite(p, VhdxFiles.HEADER_1, 4096, h -> h.putLong(72, 12345));
        assertReadsData(p);
        VhdxFiles.rewrite(p, VhdxFiles.HEADER_1, 4096, h -> h.putLong(8, 3));
        assertInvalid(p, "VHDX log (offset 12345, 1048576 bytes) is misplaced");

        p = copy(good, "version.vhdx");
        VhdxFiles.rewriteHeaders(p, h -> h.putShort(66, (short) 2));
        assertInvalid(p, "header 1 has version 2 (only 1 is defined)");

        p = copy(good, "same-sequence.vhdx");
        VhdxFiles.rewrite(p, VhdxFiles.HEADER_1, 4096, h -> h.putLong(8, 2).putLong(16, 99));
        assertInvalid(p, "both VHDX headers carry sequence number 2 but differ");

        p = copy(good, "log-misplaced.vhdx");
        VhdxFiles.rewriteHeaders(p, h -> h.putLong(72, 12345));
        assertInvalid(p, "VHDX log (offset 12345, 1048576 bytes) is misplaced");

        p = copy(good, "log-past-eof.vhdx");
        VhdxFiles.rewriteHeaders(p, h -> h.putInt(68, (int) (64 * MiB)));
        assertInvalid(p, "VHDX log (offset 1048576, 67108864 bytes) lies beyond the end of the file");

        p = copy(good, "log-over-bat.vhdx");
        VhdxFiles.rewriteHeaders(p, h -> h.putInt(68, (int) (2 * MiB)));
        assertInvalid(p, "BAT region (offset 2097152 to 3145728) overlaps the log (offset 1048576 to 3145728)");
    }

    /** A log GUID in the header and an entry carrying it: the log must be replayed first, which Panamax leaves to qemu-img. */
    @Test
    void aLogWithEntriesIsRefusedWithWhatToDo() throws Exception {
        Path p = image("dirty.vhdx");
        VhdxFiles.rewriteHeaders(p, h -> h.putLong(48, 0x77).putLong(56, 0x88));
        assertReadsData(p); // a log GUID alone, over an empty log, is a clean image
        VhdxFiles.poke(p, VhdxFiles.LOG + 8192, b -> b.put("loge".getBytes()).position(32).putLong(0x77).putLong(0x88));
        assertInvalid(p, "VHDX image has a log that must be replayed before it can be read",
                "'qemu-img check -r all " + p + "'");
    }

    @Test
    void regionTables() throws Exception {
        Path good = image("good.vhdx");
        Path p = copy(good, "table-1-bad.vhdx"); // the second copy serves
        VhdxFiles.poke(p, VhdxFiles.REGION_TABLE_1 + 4, b -> b.putInt(1));
        assertReadsData(p);
        VhdxFiles.poke(p, VhdxFiles.REGION_TABLE_2, b -> b.putInt(0));
        assertInvalid(p, "neither VHDX region table is valid (table 1 has a bad checksum, table 2 has no 'regi' signature)");

        p = copy(good, "bat-past-eof.vhdx");
        VhdxFiles.rewriteRegionTables(p, t -> t.putLong(16 + 16, 1L << 40));
        assertInvalid(p, "VHDX BAT region (offset 1099511627776, 1048576 bytes) lies beyond the end of the file (6291456 bytes)");

        p = copy(good, "bat-unaligned.vhdx");
        VhdxFiles.rewriteRegionTables(p, t -> t.putLong(16 + 16, BAT + 4096));
        assertInvalid(p, "VHDX BAT region (offset 2101248, 1048576 bytes) is misplaced");

        p = copy(good, "regions-overlap.vhdx");
        VhdxFiles.rewriteRegionTables(p, t -> t.putLong(48 + 16, BAT));
        assertInvalid(p, "metadata region (offset 2097152 to 3145728) overlaps the BAT region");

        p = copy(good, "in-header-section.vhdx");
        VhdxFiles.rewriteRegionTables(p, t -> t.putLong(48 + 16, 0));
        assertInvalid(p, "VHDX metadata region (offset 0, 1048576 bytes) is misplaced");

        p = copy(good, "entry-count.vhdx");
        VhdxFiles.rewriteRegionTables(p, t -> t.putInt(8, 100_000));
        assertInvalid(p, "table 1 has 100000 entries (at most 2047)");

        p = copy(good, "no-metadata.vhdx");
        VhdxFiles.rewriteRegionTables(p, t -> t.putInt(8, 1));
        assertInvalid(p, "VHDX region table has no metadata region");

        p = copy(good, "bat-twice.vhdx");
        VhdxFiles.rewriteRegionTables(p, t -> t.put(48, VhdxFiles.guid("2DC27766-F623-4200-9D64-115E9BFD4A08")));
        assertInvalid(p, "VHDX region table lists the BAT region twice");

        // A region Panamax does not know: ignored when optional, refused when required.
        Path extra = copy(good, "optional-region.vhdx");
        try (FileChannel ch = FileChannel.open(extra, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(1), 7 * MiB - 1);
        }
        VhdxFiles.rewriteRegionTables(extra, t -> t.putInt(8, 3).put(80, VhdxFiles.guid("01234567-89AB-CDEF-0123-456789ABCDEF"))
                .putLong(96, 6 * MiB).putInt(104, (int) MiB).putInt(108, 0));
        assertReadsData(extra);
        p = copy(extra, "required-region.vhdx");
        VhdxFiles.rewriteRegionTables(p, t -> t.putInt(108, 1));
        assertInvalid(p, "VHDX image has a required region 01234567-89AB-CDEF-0123-456789ABCDEF that Panamax does not know");
    }

    private static void metadataInt(Path p, long itemOffset, int value) throws IOException {
        VhdxFiles.poke(p, METADATA + itemOffset, b -> b.putInt(value));
    }

    @Test
    void metadata() throws Exception {
        Path good = image("good.vhdx");
        Path p = copy(good, "block-size-not-power-of-two.vhdx");
        metadataInt(p, VhdxFiles.PARAMETERS, 3 << 20);
        assertInvalid(p, "VHDX block size 3145728 is invalid (a power of two from 1 MiB to 256 MiB)");
        p = copy(good, "block-size-small.vhdx");
        metadataInt(p, VhdxFiles.PARAMETERS, 512 << 10);
        assertInvalid(p, "VHDX block size 524288 is invalid");

        p = copy(good, "differencing.vhdx");
        metadataInt(p, VhdxFiles.PARAMETERS + 4, 2);
        assertInvalid(p, "VHDX image is a differencing image (it has a parent)", "Merge-VHD");

        p = copy(good, "logical-sector.vhdx");
        metadataInt(p, VhdxFiles.LOGICAL_SECTOR, 1024);
        assertInvalid(p, "VHDX logical sector size 1024 is invalid (512 or 4096)");
        p = copy(good, "physical-sector.vhdx");
        metadataInt(p, VhdxFiles.PHYSICAL_SECTOR, 0);
        assertInvalid(p, "VHDX physical sector size 0 is invalid");

        p = copy(good, "size-huge.vhdx");
        VhdxFiles.poke(p, METADATA + VhdxFiles.VIRTUAL_SIZE, b -> b.putLong(1L << 62));
        assertInvalid(p, "VHDX virtual disk size 4611686018427387904 is invalid");
        p = copy(good, "size-unaligned.vhdx");
        VhdxFiles.poke(p, METADATA + VhdxFiles.VIRTUAL_SIZE, b -> b.putLong(SIZE - 100));
        assertInvalid(p, "VHDX virtual disk size 4194204 is invalid (a multiple of the 512-byte logical sector");
        p = copy(good, "size-beyond-bat.vhdx"); // 64 TiB in 1 MiB blocks: more blocks than Panamax maps, refused before any table is made
        VhdxFiles.poke(p, METADATA + VhdxFiles.VIRTUAL_SIZE, b -> b.putLong(64L << 40));
        assertInvalid(p, "VHDX image has 67108864 blocks of 1048576 bytes, more than Panamax maps (8388608)");
        p = copy(good, "bat-too-small.vhdx"); // 1 TiB in 1 MiB blocks: a 1 MiB BAT holds 131072 entries
        VhdxFiles.poke(p, METADATA + VhdxFiles.VIRTUAL_SIZE, b -> b.putLong(1L << 40));
        assertInvalid(p, "VHDX BAT region (1048576 bytes) is too small for the 1048831 entries");

        p = copy(good, "items-overlap.vhdx"); // the virtual size item moved onto the file parameters
        VhdxFiles.poke(p, METADATA + 32 + 32 + 16, b -> b.putInt((int) VhdxFiles.PARAMETERS + 4));
        assertInvalid(p, "VHDX metadata item 'virtual disk size' (offset 65540 to 65548) overlaps the metadata item 'file parameters'");
        p = copy(good, "item-outside.vhdx");
        VhdxFiles.poke(p, METADATA + 32 + 16, b -> b.putInt((int) MiB - 4));
        assertInvalid(p, "VHDX metadata item 'file parameters' (offset 1048572, 8 bytes) lies outside the metadata region's data area");
        p = copy(good, "item-in-table.vhdx");
        VhdxFiles.poke(p, METADATA + 32 + 16, b -> b.putInt(32));
        assertInvalid(p, "VHDX metadata item 'file parameters' (offset 32, 8 bytes) lies outside");
        p = copy(good, "item-length.vhdx");
        VhdxFiles.poke(p, METADATA + 32 + 20, b -> b.putInt(4));
        assertInvalid(p, "VHDX metadata item 'file parameters' is 4 bytes, not 8");
        p = copy(good, "item-missing.vhdx");
        VhdxFiles.poke(p, METADATA + 10, b -> b.putShort((short) 4));
        assertInvalid(p, "VHDX metadata has no physical sector size item");
        p = copy(good, "item-twice.vhdx");
        VhdxFiles.poke(p, METADATA + 32 + 4 * 32, b -> b.put(VhdxFiles.guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")));
        assertInvalid(p, "VHDX metadata table lists metadata item 'logical sector size' twice");
        p = copy(good, "unknown-required-item.vhdx");
        VhdxFiles.poke(p, METADATA + 32 + 4 * 32, b -> b.put(VhdxFiles.guid("01234567-89AB-CDEF-0123-456789ABCDEF")));
        assertInvalid(p, "VHDX image has a required metadata item 01234567-89AB-CDEF-0123-456789ABCDEF that Panamax does not know");
        p = copy(good, "no-signature.vhdx");
        VhdxFiles.poke(p, METADATA, b -> b.put("metadate".getBytes()));
        assertInvalid(p, "VHDX metadata table at offset 3145728 has no 'metadata' signature");
        p = copy(good, "metadata-entries.vhdx");
        VhdxFiles.poke(p, METADATA + 10, b -> b.putShort((short) 60000));
        assertInvalid(p, "VHDX metadata table has 60000 entries (at most 2047)");
    }

    private static void batEntry(Path p, int index, long entry) throws IOException {
        VhdxFiles.poke(p, BAT + 8L * index, b -> b.putLong(entry));
    }

    @Test
    void batEntries() throws Exception {
        Path good = image("good.vhdx");
        Path p = copy(good, "block-past-eof.vhdx");
        batEntry(p, 3, (1L << 40) | 6);
        assertInvalid(p, "VHDX payload block 3 (BAT entry 3) at offset 1099511627776 (1048576 bytes) lies beyond the end of the file");
        p = copy(good, "block-offset-overflow.vhdx");
        batEntry(p, 3, 0xfffff00000000006L);
        assertInvalid(p, "VHDX payload block 3 (BAT entry 3)", "beyond the end of the file");
        p = copy(good, "block-in-header.vhdx");
        batEntry(p, 0, 6);
        assertInvalid(p, "VHDX payload block 0 (BAT entry 0) at offset 0 (1048576 bytes) lies in the header section");
        p = copy(good, "block-on-metadata.vhdx");
        batEntry(p, 0, METADATA | 6);
        assertInvalid(p, "VHDX payload block 0 (offset 3145728 to 4194304) overlaps the metadata region");
        p = copy(good, "blocks-share.vhdx");
        batEntry(p, 3, DATA | 6);
        assertInvalid(p, "VHDX payload blocks at offsets 4194304 and 4194304 overlap");
        p = copy(good, "partially-present.vhdx");
        batEntry(p, 1, (DATA + 2 * MiB) | 7);
        assertInvalid(p, "VHDX payload block 1 is partially present, which only a differencing image's block can be");
        p = copy(good, "undefined-state.vhdx");
        batEntry(p, 2, 4);
        assertInvalid(p, "VHDX BAT entry 2 for payload block 2 has state 4, which is not defined");
        p = copy(good, "reserved-bits.vhdx");
        batEntry(p, 0, DATA | 6 | 0x100);
        assertInvalid(p, "VHDX BAT entry 0 (0x400106) has reserved bits set");

        // ZERO, UNMAPPED and UNDEFINED blocks read as zeros, whatever offset they carry.
        p = copy(good, "zero-states.vhdx");
        batEntry(p, 1, (DATA + 7 * MiB) | 2);
        batEntry(p, 2, (1L << 40) | 3);
        assertReadsData(p);
        batEntry(p, 2, 1);
        assertReadsData(p);
        try (BlockBackend d = Images.open(p, Images.OpenOptions.readOnly())) {
            assertThat(d.extent(0, SIZE)).isEqualTo(new Extent(0, 1 << 20, Extent.Kind.DATA));
            assertThat(d.extent(1 << 20, 3 << 20)).isEqualTo(new Extent(1 << 20, 2 << 20, Extent.Kind.ZERO));
        }
    }

    /** With 256 MiB blocks, 16 payload entries share a sector bitmap entry: block 16 is BAT entry 17. */
    @Test
    void sectorBitmapEntriesAreSkippedAndChecked() throws Exception {
        Path p = dir.resolve("bitmap.vhdx");
        int block = 256 << 20;
        // 17 blocks, the last one holding data: written sparsely, as a disk of 4 GiB + 1 MiB would be too big for a byte array.
        byte[] tail = new byte[4096];
        Arrays.fill(tail, (byte) 0x5a);
        VhdxFiles.write(p, new byte[0], block, false);
        VhdxFiles.poke(p, METADATA + VhdxFiles.VIRTUAL_SIZE, b -> b.putLong(16L * block + MiB));
        VhdxFiles.poke(p, METADATA + VhdxFiles.PARAMETERS, b -> b.putInt(block));
        batEntry(p, 17, DATA | 6);
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(tail), DATA);
            ch.write(ByteBuffer.allocate(1), DATA + block - 1); // the whole block in the file, though the disk ends 1 MiB into it
        }
        try (BlockBackend d = Images.open(p, Images.OpenOptions.readOnly())) {
            ByteBuffer got = ByteBuffer.allocate(4096);
            d.read(16L * block, got);
            assertThat(got.array()).isEqualTo(tail);
            assertThat(d.extent(0, d.size()).length()).isEqualTo(16L * block);
        }
        QemuImg.io("vhdx", p, "read -P 0 0 4096", "read -P 0x5a 4294967296 4096").expectSuccess("qemu-io reads the image");
        batEntry(p, 16, 3);
        assertInvalid(p, "VHDX BAT entry 16 (a sector bitmap block) has state 3, which is not defined");
        batEntry(p, 16, (1L << 40) | 6);
        assertInvalid(p, "VHDX sector bitmap block of BAT entry 16 at MiB 1048576 lies outside the file");
    }

    @Test
    void truncatedFiles() throws Exception {
        Path good = image("good.vhdx");
        for (long size : new long[] {8, 100_000, MiB, 3 * MiB + 100, DATA + MiB}) {
            Path p = copy(good, "truncated-" + size + ".vhdx");
            try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
                ch.truncate(size);
            }
            assertInvalid(p, "VHDX");
        }
        Path p = copy(good, "short.vhdx");
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.truncate(100_000);
        }
        assertInvalid(p, "VHDX file is 100000 bytes, shorter than its 1 MiB header section; the image is truncated");
    }
}
