package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.ImageInfo;
import dev.panamax.storage.image.Images;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Images qemu-img makes in the formats Panamax cannot read are refused by name, and read as raw only when asked. */
class QemuForeignFormatTest {
    @TempDir
    Path dir;

    @Test
    void imagesQemuImgMakesAreRefused() throws Exception {
        Map<Path, ForeignFormat> made = ForeignImages.make(dir, 4 << 20);
        assertThat(made.values()).as("qemu-img writes these formats").contains(ForeignFormat.VMDK, ForeignFormat.VDI,
                ForeignFormat.VHDX, ForeignFormat.QED, ForeignFormat.LUKS, ForeignFormat.PARALLELS, ForeignFormat.QCOW);
        for (var e : made.entrySet()) {
            assertRefused(e.getKey(), e.getValue());
        }
        // monolithicFlat: the descriptor is refused; its extent holds the disk's bytes as they are, which is raw.
        Path extent = dir.resolve("flat-flat.vmdk");
        assertThat(Images.probe(extent)).isEqualTo(ImageFormat.RAW);
        assertThat(Files.readAllBytes(extent)).isEqualTo(Files.readAllBytes(dir.resolve("data.raw")));
    }

    @Test
    void aQcow2OverQemuImgsVmdkIsRefused() throws Exception {
        Path base = dir.resolve("base.vmdk");
        QemuImg.img("create", "-f", "vmdk", base.toString(), "4M").expectSuccess("qemu-img create -f vmdk");
        Path overlay = dir.resolve("overlay.qcow2");
        QemuImg.img("create", "-f", "qcow2", "-b", "base.vmdk", "-F", "vmdk", overlay.toString()).expectSuccess("overlay");
        assertThatThrownBy(() -> Images.open(overlay, Images.OpenOptions.readOnly())).isInstanceOf(InvalidImageException.class)
                .hasMessage(overlay + ": backing file format 'vmdk' is not supported: Panamax cannot read vmdk images yet;"
                        + " use raw, qcow2 or vhd (convert with qemu-img first)");
        QemuImg.img("rebase", "-u", "-b", "base.vmdk", "-F", "raw", overlay.toString()).expectSuccess("rebase onto raw");
        try (BlockBackend disk = Images.open(overlay, Images.OpenOptions.readOnly())) {
            // the container read as the raw disk it is declared to be
            assertThat(((dev.panamax.storage.qcow2.Qcow2Image) disk).backing().format()).isEqualTo(ImageFormat.RAW);
        }
    }

    private static void assertRefused(Path image, ForeignFormat format) throws Exception {
        String refusal = image + " is " + format.description() + ", which Panamax cannot read yet; ";
        assertThatThrownBy(() -> Images.probe(image)).as(image.toString()).isInstanceOf(InvalidImageException.class)
                .hasMessageStartingWith(refusal);
        assertThatThrownBy(() -> Images.open(image, Images.OpenOptions.readWrite().withLock())).as(image.toString())
                .isInstanceOf(InvalidImageException.class).hasMessageStartingWith(refusal);
        assertThatThrownBy(() -> ImageInfo.read(image)).as(image.toString()).hasMessageStartingWith(refusal);
        assertThat(ImageInfo.read(image, ImageFormat.RAW).virtualSize()).as(image.toString()).isEqualTo(Files.size(image));
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly().withFormat(ImageFormat.RAW))) {
            assertThat(disk.format()).isEqualTo(ImageFormat.RAW);
        }
    }
}
