package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.ImageInfo;
import dev.panamax.storage.image.Images;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
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
        assertThat(made.values()).as("qemu-img writes these formats").contains(ForeignFormat.QED, ForeignFormat.LUKS, ForeignFormat.PARALLELS, ForeignFormat.QCOW);
        for (var e : made.entrySet()) {
            assertRefused(e.getKey(), e.getValue());
        }
    }

    /** VMDK, VDI and VHDX were refused here until Panamax read them: every variant qemu-img writes now opens as itself. */
    @Test
    void imagesQemuImgMakesInVmdkVdiAndVhdxNowOpen() throws Exception {
        byte[] data = new byte[4 << 20];
        new java.util.Random(21).nextBytes(data);
        Path raw = Files.write(dir.resolve("data.raw"), data);
        Map<String, ImageFormat> made = Map.of("sparse.vmdk:", ImageFormat.VMDK,
                "stream.vmdk:subformat=streamOptimized", ImageFormat.VMDK, "flat.vmdk:subformat=monolithicFlat", ImageFormat.VMDK,
                "dynamic.vdi:", ImageFormat.VDI, "static.vdi:static=on", ImageFormat.VDI, "dynamic.vhdx:", ImageFormat.VHDX,
                "fixed.vhdx:subformat=fixed", ImageFormat.VHDX);
        for (var e : made.entrySet()) {
            String[] nameAndOptions = e.getKey().split(":", 2);
            Path image = dir.resolve(nameAndOptions[0]);
            List<String> args = new ArrayList<>(List.of("convert", "-f", "raw", "-O", e.getValue().id()));
            if (!nameAndOptions[1].isEmpty()) args.addAll(List.of("-o", nameAndOptions[1]));
            args.addAll(List.of(raw.toString(), image.toString()));
            QemuImg.img(args.toArray(String[]::new)).expectSuccess("qemu-img convert to " + image);
            assertThat(Images.probe(image)).as(image.toString()).isEqualTo(e.getValue());
            assertThat(ImageInfo.read(image).format()).as(image.toString()).isEqualTo(e.getValue());
            try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly().withLock())) {
                assertThat(disk.format()).isEqualTo(e.getValue());
                assertThat(Disks.readAll(disk)).as(image.toString()).isEqualTo(data);
            }
        }
        // monolithicFlat: the extent next to the descriptor holds the disk's bytes as they are, which is raw.
        Path extent = dir.resolve("flat-flat.vmdk");
        assertThat(Images.probe(extent)).isEqualTo(ImageFormat.RAW);
        assertThat(Files.readAllBytes(extent)).isEqualTo(data);
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
