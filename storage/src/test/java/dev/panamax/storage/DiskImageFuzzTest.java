package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.storage.image.ImageInfo;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.qcow2.Qcow2Check;
import dev.panamax.storage.qcow2.Qcow2Image;
import dev.panamax.sys.TmpfsTempDir;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.io.TempDir;

/**
 * An image file made of a fuzzer's bytes, opened as qcow2, vhd, vmdk, vdi or vhdx: info, open, reads and extents across
 * the disk, check, then a write, write-zeroes, discard and flush. A damaged or hostile image may only
 * give {@link InvalidImageException} (or {@link ImageCorruptException}, its kind), or {@link
 * ReadOnlyImageException} for an image marked corrupt; never anything deeper. Backing files are not
 * opened: a fuzzed name could be any host file (a VMDK descriptor's flat extents may only name files in
 * the fuzzer's own directory).
 */
class DiskImageFuzzTest {
    /** Bytes read at each place: enough to cross a few small clusters. */
    private static final int READ_BYTES = 4096;
    /** Extents walked from the start; a fuzzed disk can be petabytes of tiny clusters. */
    private static final int MAX_EXTENTS = 64;
    @TempDir(factory = TmpfsTempDir.class)
    static Path dir;

    @FuzzTest
    void qcow2(byte[] file) throws IOException {
        exercise(file, ImageFormat.QCOW2);
    }

    @FuzzTest
    void vhd(byte[] file) throws IOException {
        exercise(file, ImageFormat.VHD);
    }

    @FuzzTest
    void vmdk(byte[] file) throws IOException {
        exercise(file, ImageFormat.VMDK);
    }

    @FuzzTest
    void vdi(byte[] file) throws IOException {
        exercise(file, ImageFormat.VDI);
    }

    @FuzzTest
    void vhdx(byte[] file) throws IOException {
        exercise(file, ImageFormat.VHDX);
    }

    private static void exercise(byte[] file, ImageFormat format) throws IOException {
        Path image = dir.resolve("fuzzed.img");
        Files.write(image, file);
        Images.OpenOptions readOnly = Images.OpenOptions.readOnly().withFormat(format).withoutBacking();
        try {
            ImageInfo.read(image);
            try (BlockBackend disk = Images.open(image, readOnly)) {
                readAround(disk);
                if (disk instanceof Qcow2Image qcow2) {
                    Qcow2Check.check(qcow2);
                }
                if (disk instanceof dev.panamax.storage.vmdk.VmdkImage vmdk) {
                    vmdk.check(problem -> { });
                }
            }
            try (BlockBackend disk = Images.open(image, Images.OpenOptions.readWrite().withFormat(format).withoutBacking().withoutSync())) {
                long size = disk.size();
                int n = (int) Math.min(READ_BYTES, size);
                byte[] data = new byte[n]; // (n is 0 for a disk of no bytes, which a valid image can be)
                if (n > 0) {
                    data[0] = 1;
                }
                disk.write(size / 2 - n / 2, ByteBuffer.wrap(data));
                disk.writeZeroes(0, n);
                disk.discard(size - n, n);
                disk.flush();
                readAround(disk);
            }
        } catch (InvalidImageException | ReadOnlyImageException refused) {
            // the documented answers to a damaged image
        }
    }

    /** Reads the start, the middle and the end, and walks the first extents. */
    private static void readAround(BlockBackend disk) throws IOException {
        long size = disk.size();
        int n = (int) Math.min(READ_BYTES, size);
        for (long offset : new long[] {0, size / 2 - n / 2, size - n}) {
            disk.read(offset, ByteBuffer.allocate(n));
        }
        long offset = 0;
        for (int i = 0; i < MAX_EXTENTS && offset < size; i++) {
            Extent extent = disk.extent(offset, size - offset);
            assertThat(extent.offset()).isEqualTo(offset);
            assertThat(extent.length()).as("extent at %d", offset).isBetween(1L, size - offset);
            offset += extent.length();
        }
    }
}
