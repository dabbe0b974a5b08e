package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.storage.image.ImageConverter;
import dev.panamax.storage.image.Images;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link ImageConverter} copies every byte of the disk, up to a last unit that is not whole. */
class ImageConverterTest {
    @TempDir
    Path dir;

    @Test
    void aDiskWhoseSizeIsNoMultipleOfTheCopyUnitIsCopiedToItsLastByte() throws Exception {
        for (int size : new int[] {512, 5000, 3 * 4096 + 512, (2 << 20) + 512}) {
            byte[] data = new byte[size];
            new Random(size).nextBytes(data);
            Path src = Files.write(dir.resolve(size + ".raw"), data);
            for (ImageFormat f : ImageFormat.values()) {
                if (f == ImageFormat.VHDX) continue; // read-only: Panamax does not create VHDX
                if (f != ImageFormat.RAW && size % 512 != 0) continue; // qcow2 and VHD disks are whole sectors
                Path out = dir.resolve(size + "-out." + f.id());
                ImageConverter.convert(src, out, ImageConverter.Options.of(f), null);
                try (BlockBackend disk = Images.open(out, Images.OpenOptions.readOnly().withFormat(f))) {
                    byte[] copy = Disks.readAll(disk);
                    assertThat(java.util.Arrays.copyOf(copy, size)).as(size + " bytes to " + f).isEqualTo(data);
                }
            }
        }
    }
}
