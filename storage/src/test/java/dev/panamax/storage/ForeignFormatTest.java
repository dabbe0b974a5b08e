package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.image.ImageConverter;
import dev.panamax.storage.image.ImageInfo;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Files in the formats qemu-img recognises and Panamax cannot read are refused by name, never taken
 * for raw; raw data holding the same bytes elsewhere stays raw; an explicit raw format reads any file
 * as raw. The headers are written here, one signature each, as QEMU's probe functions know them.
 */
class ForeignFormatTest {
    private static final int FILE_SIZE = 64 << 10;

    @TempDir
    Path dir;

    /** A 64 KiB file of a repeating non-zero pattern (no signature of anything), changed by {@code header}. */
    private Path file(String name, Consumer<ByteBuffer> header) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(FILE_SIZE);
        for (int i = 0; i < FILE_SIZE; i++) b.put(i, (byte) (0x11 + i % 7));
        header.accept(b);
        return Files.write(dir.resolve(name), b.array());
    }

    private static void put(ByteBuffer b, int at, String text) {
        b.put(at, text.getBytes(StandardCharsets.ISO_8859_1));
    }

    private static void le32(ByteBuffer b, int at, int v) {
        b.duplicate().order(ByteOrder.LITTLE_ENDIAN).putInt(at, v);
    }

    private static void be32(ByteBuffer b, int at, int v) {
        b.duplicate().order(ByteOrder.BIG_ENDIAN).putInt(at, v);
    }

    private static void text(ByteBuffer b, String text) {
        put(b, 0, text);
        b.put(text.length(), new byte[64]); // the rest of a short file reads as zeros
    }

    /** The signatures of VMDK, VDI and VHDX, which Panamax reads; the key names the file and the format. */
    private static final Map<String, Consumer<ByteBuffer>> READ_SIGNATURES = Map.ofEntries(
            Map.entry("sparse.vmdk:VMDK", b -> put(b, 0, "KDMV")),
            Map.entry("vmware3.vmdk:VMDK", b -> put(b, 0, "COWD")),
            Map.entry("descriptor.vmdk:VMDK", b -> text(b, "# Disk DescriptorFile\nversion=1\nCID=fffffffe\n"
                    + "createType=\"monolithicFlat\"\n\nRW 8192 FLAT \"descriptor-flat.vmdk\" 0\n")),
            Map.entry("crlf.vmdk:VMDK", b -> text(b, "# Disk DescriptorFile\r\n   \r\n  \n# more\r\nversion=3\r\nCID=1\r\n")),
            Map.entry("disk.vdi:VDI", b -> {
                put(b, 0, "<<< Oracle VM VirtualBox Disk Image >>>\n");
                le32(b, 0x40, 0xbeda107f);
            }),
            Map.entry("qemu-banner.vdi:VDI", b -> {
                put(b, 0, "<<< QEMU VM Virtual Disk Image >>>\n");
                le32(b, 0x40, 0xbeda107f);
            }),
            Map.entry("disk.vhdx:VHDX", b -> put(b, 0, "vhdxfile")));

    /** Each signature, as the start (or, for DMG, the end) of a file; the key names the file and the format. */
    private static final Map<String, Consumer<ByteBuffer>> SIGNATURES = Map.ofEntries(
            Map.entry("disk.qed:QED", b -> put(b, 0, "QED\0")),
            Map.entry("disk.luks:LUKS", b -> put(b, 0, "LUKS\u00ba\u00be\0\u0001aes\0")),
            Map.entry("luks2.img:LUKS", b -> put(b, 0, "LUKS\u00ba\u00be\0\u0002")),
            Map.entry("disk.hdd:PARALLELS", b -> {
                put(b, 0, "WithoutFreeSpace");
                le32(b, 16, 2);
            }),
            Map.entry("ext.hdd:PARALLELS", b -> {
                put(b, 0, "WithouFreSpacExt");
                le32(b, 16, 2);
            }),
            Map.entry("bochs2.img:BOCHS", b -> bochs(b, 0x20000)),
            Map.entry("bochs1.img:BOCHS", b -> bochs(b, 0x10000)),
            Map.entry("old.qcow:QCOW", b -> {
                be32(b, 0, 0x514649fb);
                be32(b, 4, 1);
            }),
            Map.entry("disk.cloop:CLOOP", b -> put(b, 0,
                    "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n")),
            Map.entry("disk.dmg:DMG", b -> {
                put(b, FILE_SIZE - 512, "koly");
                be32(b, FILE_SIZE - 508, 4);
                be32(b, FILE_SIZE - 504, 512);
            }));

    private static void bochs(ByteBuffer b, int version) {
        b.put(0, new byte[72]);
        put(b, 0, "Bochs Virtual HD Image");
        put(b, 32, "Redolog");
        put(b, 48, "Growing");
        le32(b, 64, version);
    }

    @Test
    void eachSignatureIsRefusedByNameAndReadAsRawOnlyWhenAsked() throws Exception {
        for (var e : SIGNATURES.entrySet()) {
            String[] nameAndFormat = e.getKey().split(":");
            ForeignFormat format = ForeignFormat.valueOf(nameAndFormat[1]);
            Path p = file(nameAndFormat[0], e.getValue());
            assertThatThrownBy(() -> Images.probe(p)).as(e.getKey()).isInstanceOf(InvalidImageException.class)
                    .hasMessageStartingWith(p + " is " + format.description() + ", which Panamax cannot read yet; ");
            assertThatThrownBy(() -> Images.open(p, Images.OpenOptions.readOnly())).as(e.getKey())
                    .isInstanceOf(InvalidImageException.class).hasMessageContaining(format.description());
            assertThatThrownBy(() -> Images.open(p, Images.OpenOptions.readWrite().withLock())).as(e.getKey())
                    .isInstanceOf(InvalidImageException.class).hasMessageContaining(format.description());
            try (BlockBackend raw = Images.open(p, Images.OpenOptions.readWrite().withFormat(ImageFormat.RAW))) {
                assertThat(raw.format()).as(e.getKey()).isEqualTo(ImageFormat.RAW);
                assertThat(raw.size()).isEqualTo(Files.size(p));
            }
        }
    }

    /**
     * VMDK, VDI and VHDX signatures make a file that format, never raw: a file with nothing else of the
     * format is a damaged image, refused with a sentence naming it, and raw reads it only when asked.
     */
    @Test
    void vmdkVdiAndVhdxSignaturesAreThoseFormats() throws Exception {
        for (var e : READ_SIGNATURES.entrySet()) {
            String[] nameAndFormat = e.getKey().split(":");
            ImageFormat format = ImageFormat.valueOf(nameAndFormat[1]);
            Path p = file(nameAndFormat[0], e.getValue());
            assertThat(Images.probe(p)).as(e.getKey()).isEqualTo(format);
            assertThatThrownBy(() -> Images.open(p, Images.OpenOptions.readOnly())).as(e.getKey())
                    .isInstanceOf(InvalidImageException.class).hasMessageStartingWith(p + ": ")
                    .hasMessageContaining(nameAndFormat[1]);
            assertThat(ImageChecker.check(p).isClean()).as(e.getKey()).isFalse();
            try (BlockBackend raw = Images.open(p, Images.OpenOptions.readWrite().withFormat(ImageFormat.RAW))) {
                assertThat(raw.format()).as(e.getKey()).isEqualTo(ImageFormat.RAW);
            }
        }
    }

    @Test
    void theRefusalSaysHowToConvert() throws Exception {
        Path qed = file("disk.qed", b -> put(b, 0, "QED\0"));
        assertThatThrownBy(() -> Images.probe(qed)).hasMessage(qed + " is a QED image (QEMU enhanced disk), which Panamax cannot read"
                + " yet; convert it with 'qemu-img convert -f qed -O qcow2 " + qed + " " + dir.resolve("disk.qcow2") + "' first");
        Path luks = file("secret.img", SIGNATURES.get("disk.luks:LUKS"));
        assertThatThrownBy(() -> Images.probe(luks)).hasMessageContaining("qemu-img convert")
                .hasMessageEndingWith("if the guest decrypts it itself, give the image's format as raw");
    }

    /** The bytes of every signature, moved from where QEMU looks for them, leave raw data raw. */
    @Test
    void rawDataHoldingSignaturesElsewhereStaysRaw() throws Exception {
        Map<String, Consumer<ByteBuffer>> elsewhere = Map.ofEntries(
                Map.entry("kdmv-at-1", b -> put(b, 1, "KDMV")),
                Map.entry("kdmv-at-512", b -> put(b, 512, "KDMV")),
                Map.entry("descriptor-after-empty-line", b -> text(b, "\nversion=1\n")), // QEMU allows lines of spaces only
                Map.entry("descriptor-after-text", b -> text(b, "hello\nversion=1\n")),
                Map.entry("descriptor-version-4", b -> text(b, "# Disk DescriptorFile\nversion=4\n")),
                Map.entry("descriptor-past-probe", b -> {
                    put(b, 0, "#" + "x".repeat(2100) + "\n"); // one comment longer than the bytes probed
                    put(b, 2102, "version=1\n");
                }),
                Map.entry("vdi-banner-only", b -> put(b, 0, "<<< Oracle VM VirtualBox Disk Image >>>\n")),
                Map.entry("vdi-signature-at-0x44", b -> le32(b, 0x44, 0xbeda107f)),
                Map.entry("vhdxfile-at-8", b -> put(b, 8, "vhdxfile")),
                Map.entry("qed-without-nul", b -> put(b, 0, "QEDX")),
                Map.entry("qed-at-4096", b -> put(b, 4096, "QED\0")),
                Map.entry("luks-version-3", b -> put(b, 0, "LUKS\u00ba\u00be\0\u0003")),
                Map.entry("luks-at-512", b -> put(b, 512, "LUKS\u00ba\u00be\0\u0001")),
                Map.entry("parallels-version-3", b -> {
                    put(b, 0, "WithoutFreeSpace");
                    le32(b, 16, 3);
                }),
                Map.entry("bochs-volatile", b -> {
                    bochs(b, 0x20000);
                    put(b, 48, "Volatile\0");
                }),
                Map.entry("bochs-unterminated", b -> {
                    bochs(b, 0x20000);
                    put(b, 22, "!"); // the magic must end where QEMU's strcmp ends it
                }),
                Map.entry("cloop-v1", b -> put(b, 0, "#!/bin/sh\n#V1.0 Format\n")),
                Map.entry("koly-not-at-the-end", b -> {
                    put(b, FILE_SIZE - 1024, "koly");
                    be32(b, FILE_SIZE - 1020, 4);
                    be32(b, FILE_SIZE - 1016, 512);
                }),
                Map.entry("koly-version-3", b -> {
                    put(b, FILE_SIZE - 512, "koly");
                    be32(b, FILE_SIZE - 508, 3);
                    be32(b, FILE_SIZE - 504, 512);
                }),
                Map.entry("zeros", b -> b.put(0, new byte[FILE_SIZE])));
        for (var e : elsewhere.entrySet()) {
            Path p = file(e.getKey() + ".img", e.getValue());
            assertThat(Images.probe(p)).as(e.getKey()).isEqualTo(ImageFormat.RAW);
            try (BlockBackend disk = Images.open(p, Images.OpenOptions.readOnly())) {
                assertThat(disk.format()).as(e.getKey()).isEqualTo(ImageFormat.RAW);
            }
        }
        assertThat(Images.probe(Files.write(dir.resolve("empty.img"), new byte[0]))).isEqualTo(ImageFormat.RAW);
        assertThat(Images.probe(Files.write(dir.resolve("tiny.img"), new byte[] {'K', 'D'}))).isEqualTo(ImageFormat.RAW);
        // qcow2's magic with version 2 or 3 stays qcow2's
        Path qcow2 = file("v3.qcow2", b -> {
            be32(b, 0, 0x514649fb);
            be32(b, 4, 3);
        });
        assertThat(Images.probe(qcow2)).isEqualTo(ImageFormat.QCOW2);
    }

    @Test
    void aBackingFileInAForeignFormatIsRefusedToo() throws Exception {
        Path qed = file("base.qed", b -> put(b, 0, "QED\0"));
        Path overlay = dir.resolve("overlay.qcow2");
        Qcow2Image.create(overlay, CreateOptions.of(ImageFormat.QCOW2, FILE_SIZE).withBacking("base.qed", null)); // probed when opened
        assertThatThrownBy(() -> Images.open(overlay, Images.OpenOptions.readOnly())).isInstanceOf(InvalidImageException.class)
                .hasMessageStartingWith("backing file " + qed + " of " + overlay + " is a QED image (QEMU enhanced disk), which Panamax cannot read yet")
                .hasMessageContaining("panamax image rebase -u -b " + dir.resolve("base.qcow2") + " " + overlay);
        try (BlockBackend top = Images.open(overlay, Images.OpenOptions.readOnly().withoutBacking())) {
            assertThat(top.format()).isEqualTo(ImageFormat.QCOW2); // info, check and rebase read the overlay itself
        }
        assertThat(ImageChecker.check(overlay).problems()).singleElement().satisfies(p -> assertThat(p.message())
                .startsWith("backing chain: backing file " + qed));
        assertThatThrownBy(() -> Images.create(dir.resolve("new.qcow2"), CreateOptions.of(ImageFormat.QCOW2, -1)
                .withBacking("base.qed", null))).hasMessageContaining("is a QED image");

        Path raw = dir.resolve("raw-backed.qcow2");
        Images.create(raw, CreateOptions.of(ImageFormat.QCOW2, -1).withBacking("base.qed", ImageFormat.RAW));
        try (BlockBackend disk = Images.open(raw, Images.OpenOptions.readOnly())) {
            ByteBuffer first = ByteBuffer.allocate(4);
            disk.read(0, first);
            assertThat(first.array()).asString(StandardCharsets.ISO_8859_1).isEqualTo("QED\0"); // an explicit raw backing format is raw
        }
    }

    @Test
    void theImageOperationsRefuseAndTakeAnExplicitRawFormat() throws Exception {
        Path qed = file("disk.qed", SIGNATURES.get("disk.qed:QED"));
        assertThatThrownBy(() -> ImageInfo.read(qed)).hasMessageContaining("is a QED image (QEMU enhanced disk)");
        assertThatThrownBy(() -> ImageChecker.check(qed)).as("refused, not reported as a damaged image")
                .isInstanceOf(InvalidImageException.class).hasMessageContaining("is a QED image");
        assertThatThrownBy(() -> ImageChecker.repair(qed)).hasMessageContaining("is a QED image");
        Path out = dir.resolve("out.raw");
        assertThatThrownBy(() -> ImageConverter.convert(qed, out, ImageConverter.Options.of(ImageFormat.RAW), null))
                .hasMessageContaining("is a QED image");
        assertThat(out).doesNotExist();

        assertThat(ImageInfo.read(qed, ImageFormat.RAW).format()).isEqualTo(ImageFormat.RAW);
        assertThat(ImageChecker.check(qed, ImageFormat.RAW).isClean()).isTrue();
        ImageConverter.convert(qed, out, ImageConverter.Options.of(ImageFormat.RAW).withSourceFormat(ImageFormat.RAW), null);
        assertThat(Files.readAllBytes(out)).isEqualTo(Files.readAllBytes(qed));
    }

    @Test
    void aForeignFormatNameSaysPanamaxCannotReadIt() {
        assertThatThrownBy(() -> ImageFormat.parse("QED")).isInstanceOf(ImageRequestException.class)
                .hasMessage("Panamax cannot read qed images yet; use raw, qcow2, vhd, vmdk, vdi or vhdx (convert with qemu-img first)");
        assertThatThrownBy(() -> ImageFormat.parse("floppy"))
                .hasMessage("unknown image format 'floppy'; use raw, qcow2, vhd, vmdk, vdi or vhdx");
        assertThat(ImageFormat.parse("VHDX")).isEqualTo(ImageFormat.VHDX);
        assertThat(ImageFormat.parse("VMDK")).isEqualTo(ImageFormat.VMDK);
        assertThat(ImageFormat.parse("vdi")).isEqualTo(ImageFormat.VDI);
        for (ForeignFormat f : ForeignFormat.values()) {
            assertThat(ForeignFormat.byId(f.id())).contains(f);
        }
    }
}
