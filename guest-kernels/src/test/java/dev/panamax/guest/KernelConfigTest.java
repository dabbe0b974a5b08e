package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KernelConfigTest {
    @TempDir
    Path dir;

    private static final String CONFIG = """
            #
            # Automatically generated file; DO NOT EDIT.
            #
            CONFIG_BLK_DEV_INITRD=y
            CONFIG_RD_GZIP=y
            CONFIG_BINFMT_ELF=y
            CONFIG_BINFMT_SCRIPT=y
            CONFIG_PROC_FS=y
            CONFIG_SYSFS=y
            CONFIG_DEVTMPFS=y
            CONFIG_SERIAL_8250_CONSOLE=y
            CONFIG_PCI=y
            CONFIG_VIRTIO_PCI=m
            CONFIG_VSOCKETS=y
            # CONFIG_VIRTIO_VSOCKETS is not set
            CONFIG_LOCALVERSION="-test"
            """;

    private static byte[] gzip(byte[] data) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream z = new GZIPOutputStream(out)) {
            z.write(data);
        }
        return out.toByteArray();
    }

    /** A stand-in vmlinux: some code, the embedded configuration as CONFIG_IKCONFIG lays it out, more code. */
    private static byte[] vmlinux(String config) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(new byte[] {0x7f, 'E', 'L', 'F'});
        out.write(new byte[3000]);
        out.write("IKCFG_ST".getBytes(StandardCharsets.US_ASCII));
        out.write(gzip(config.getBytes(StandardCharsets.US_ASCII)));
        out.write("IKCFG_ED".getBytes(StandardCharsets.US_ASCII));
        out.write(new byte[500]);
        return out.toByteArray();
    }

    /** A stand-in bzImage: a setup header with 3 setup sectors, and the vmlinux gzip-compressed as its payload at offset 100. */
    private static byte[] bzImage(byte[] vmlinux) throws IOException {
        byte[] payload = gzip(vmlinux);
        int code = (3 + 1) * 512;
        ByteBuffer b = ByteBuffer.allocate(code + 100 + payload.length + 64).order(ByteOrder.LITTLE_ENDIAN);
        b.put(0x1f1, (byte) 3).putInt(0x202, 0x53726448).putInt(0x248, 100).putInt(0x24c, payload.length);
        b.put(code + 100, payload);
        return b.array();
    }

    @Test
    void theConfigurationIsReadFromAVmlinuxAndFromAGzipBzImageAndUnmetOptionsAreNamed() throws IOException {
        Path vmlinux = Files.write(dir.resolve("vmlinux"), vmlinux(CONFIG));
        Path bzImage = Files.write(dir.resolve("bzImage"), bzImage(vmlinux(CONFIG)));
        for (Path kernel : List.of(vmlinux, bzImage)) {
            KernelConfig config = KernelConfig.of(kernel).orElseThrow();
            assertThat(config.source()).isEqualTo(kernel + "'s embedded configuration");
            assertThat(config.options()).containsEntry("CONFIG_LOCALVERSION", "\"-test\"").doesNotContainKey("CONFIG_VIRTIO_VSOCKETS");
            assertThat(config.unmet(KernelConfig.EXEC)).containsExactly(
                    "CONFIG_VIRTIO_PCI is a module (m), which nothing loads; it must be y: Panamax's virtio devices are PCI devices",
                    "CONFIG_VIRTIO_VSOCKETS is not set; it must be y: exec's channel to the guest is a vsock");
        }
    }

    @Test
    void withoutAnEmbeddedConfigurationTheFileBesideTheKernelIsRead() throws IOException {
        Path boot = Files.createDirectory(dir.resolve("boot"));
        Path vmlinuz = Files.write(boot.resolve("vmlinuz-6.1.0-57-amd64"), new byte[4096]);
        assertThat(KernelConfig.of(vmlinuz)).isEmpty();
        Files.writeString(boot.resolve("config-6.1.0-57-amd64"), CONFIG);
        assertThat(KernelConfig.of(vmlinuz).orElseThrow().source()).isEqualTo(boot.resolve("config-6.1.0-57-amd64").toString());

        Path tree = dir.resolve("linux");
        Path bzImage = Files.write(Files.createDirectories(tree.resolve("arch/x86/boot")).resolve("bzImage"), new byte[4096]);
        Files.writeString(tree.resolve(".config"), CONFIG + KernelConfig.fragment(KernelConfig.EXEC));
        KernelConfig fromTree = KernelConfig.of(bzImage).orElseThrow();
        assertThat(fromTree.source()).isEqualTo(tree.resolve(".config").toAbsolutePath().toString());
        assertThat(fromTree.unmet(KernelConfig.EXEC)).as("the fragment's lines come later and win").isEmpty();
    }

    @Test
    void aBzImageCompressedWithAnythingButGzipIsNotReadAndNothingIsMadeUp() throws IOException {
        byte[] image = bzImage(vmlinux(CONFIG));
        int payload = (3 + 1) * 512 + 100;
        image[payload] = (byte) 0xfd; // xz's first byte
        assertThat(KernelConfig.of(Files.write(dir.resolve("bzImage"), image))).isEmpty();
    }

    @Test
    void mergingSetsEachOptionToYesWhereverItStoodAndAppendsTheMissingOnes() {
        String merged = KernelConfig.merge(CONFIG, KernelConfig.EXEC.subList(8, 12));
        assertThat(merged).contains("\nCONFIG_PCI=y\nCONFIG_VIRTIO_PCI=y\nCONFIG_VSOCKETS=y\nCONFIG_VIRTIO_VSOCKETS=y\n")
                .doesNotContain("=m").doesNotContain("is not set").endsWith("CONFIG_LOCALVERSION=\"-test\"\n");
        assertThat(KernelConfig.parse(merged, "m").unmet(KernelConfig.EXEC)).isEmpty();
        assertThat(KernelConfig.merge("CONFIG_A=y", KernelConfig.SHARES)).isEqualTo("CONFIG_A=y\nCONFIG_FUSE_FS=y\nCONFIG_VIRTIO_FS=y\n");
    }

    @Test
    void theBuiltInKernelHasEveryOptionPanamaxNeeds() throws IOException {
        KernelConfig builtIn = KernelConfig.of(GuestImages.defaultVmlinux()).orElseThrow();
        assertThat(builtIn.unmet(KernelConfig.EXEC)).isEmpty();
        assertThat(builtIn.unmet(KernelConfig.SHARES)).isEmpty();
    }
}
