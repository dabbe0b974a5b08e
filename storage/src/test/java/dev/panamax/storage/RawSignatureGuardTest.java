package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A guest cannot turn a raw disk whose format was detected into an image of another format (a
 * qcow2 header naming a backing file of its choosing, say): such writes are refused and the disk
 * stays as it was. Given as raw, the disk takes any bytes.
 */
class RawSignatureGuardTest {
    private static final int SIZE = 1 << 20;
    /** A qcow2 version 3 header's first bytes: magic and version. */
    private static final byte[] QCOW2 = {'Q', 'F', 'I', (byte) 0xfb, 0, 0, 0, 3};

    @TempDir
    Path dir;
    private Path disk;

    @BeforeEach
    void rawDisk() throws IOException {
        disk = dir.resolve("disk.img");
        try (RawImage raw = RawImage.create(disk, SIZE)) {
            raw.write(0, ByteBuffer.wrap("an ordinary boot sector".getBytes(StandardCharsets.US_ASCII)));
        }
    }

    private BlockBackend detected() throws IOException {
        return Images.open(disk, Images.OpenOptions.readWrite());
    }

    @Test
    void aQcow2HeaderWrittenAtTheStartIsRefusedAndTheDiskKeepsItsBytes() throws IOException {
        byte[] before = Files.readAllBytes(disk);
        try (BlockBackend b = detected()) {
            assertThatThrownBy(() -> b.write(0, ByteBuffer.wrap(QCOW2)))
                    .isInstanceOf(RefusedWriteException.class).hasMessageContaining("a qcow2 image").hasMessageContaining("format=raw");
        }
        assertThat(Files.readAllBytes(disk)).isEqualTo(before);
        assertThat(Images.probe(disk)).isEqualTo(ImageFormat.RAW);
    }

    @Test
    void aSignatureAssembledFromSeveralBuffersIsRefusedToo() throws IOException {
        byte[] sector = new byte[512];
        System.arraycopy(QCOW2, 0, sector, 0, QCOW2.length);
        MemorySegment[] pieces = {MemorySegment.ofArray(new byte[] {'Q', 'F'}), MemorySegment.ofArray(new byte[] {'I', (byte) 0xfb}),
                MemorySegment.ofArray(java.util.Arrays.copyOfRange(sector, 4, 512))};
        try (BlockBackend b = detected()) {
            assertThatThrownBy(() -> b.write(0, pieces, pieces.length)).isInstanceOf(RefusedWriteException.class);
        }
    }

    @Test
    void aForeignSignatureAtTheStartAndAVhdFooterAtTheEndAreRefused() throws IOException {
        try (BlockBackend b = detected()) {
            assertThatThrownBy(() -> b.write(0, ByteBuffer.wrap("QED\0".getBytes(StandardCharsets.US_ASCII))))
                    .isInstanceOf(RefusedWriteException.class).hasMessageContaining("QED");
            // VMDK, VDI and VHDX, which Panamax reads, are guarded like qcow2 and vhd.
            assertThatThrownBy(() -> b.write(0, ByteBuffer.wrap("vhdxfile".getBytes(StandardCharsets.US_ASCII))))
                    .isInstanceOf(RefusedWriteException.class).hasMessageContaining("a vhdx image");
            assertThatThrownBy(() -> b.write(0, ByteBuffer.wrap("KDMV".getBytes(StandardCharsets.US_ASCII))))
                    .isInstanceOf(RefusedWriteException.class).hasMessageContaining("a vmdk image");
            byte[] vdi = new byte[0x44];
            ByteBuffer.wrap(vdi).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(0x40, 0xbeda107f);
            assertThatThrownBy(() -> b.write(0, ByteBuffer.wrap(vdi)))
                    .isInstanceOf(RefusedWriteException.class).hasMessageContaining("a vdi image");
            byte[] footer = new byte[512];
            System.arraycopy("conectix".getBytes(StandardCharsets.US_ASCII), 0, footer, 0, 8);
            assertThatThrownBy(() -> b.write(SIZE - 512, ByteBuffer.wrap(footer)))
                    .isInstanceOf(RefusedWriteException.class).hasMessageContaining("a vhd image");
        }
    }

    @Test
    void ordinaryWritesAnywhereIncludingTheStartAndTheEndPass() throws IOException {
        byte[] data = new byte[4096];
        java.util.Arrays.fill(data, (byte) 0x5a);
        try (BlockBackend b = detected()) {
            b.write(0, ByteBuffer.wrap(data));
            b.write(SIZE - data.length, ByteBuffer.wrap(data));
            b.write(SIZE / 2, ByteBuffer.wrap(QCOW2)); // the probe does not look there
        }
        byte[] after = Files.readAllBytes(disk);
        assertThat(after[0]).isEqualTo((byte) 0x5a);
        assertThat(after[SIZE - 1]).isEqualTo((byte) 0x5a);
        assertThat(after[SIZE / 2]).isEqualTo((byte) 'Q');
    }

    @Test
    void aDiskGivenAsRawTakesAnyBytes() throws IOException {
        try (BlockBackend b = Images.open(disk, Images.OpenOptions.readWrite().withFormat(ImageFormat.RAW))) {
            b.write(0, ByteBuffer.wrap(QCOW2));
        }
        assertThat(Files.readAllBytes(disk)).startsWith(QCOW2);
    }
}
