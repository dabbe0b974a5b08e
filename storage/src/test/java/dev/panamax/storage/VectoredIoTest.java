package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.Images;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Scattered reads and gathering writes (one preadv/pwritev per request for raw images), against the plain path. */
class VectoredIoTest {
    @TempDir Path dir;

    /** Buffers of uneven sizes, some empty, more than one system call takes (IOV_MAX is 1024). */
    private static MemorySegment[] buffers(Arena arena, int count, long seed) {
        Random random = new Random(seed);
        MemorySegment[] buffers = new MemorySegment[count];
        for (int i = 0; i < count; i++) {
            buffers[i] = arena.allocate(i % 7 == 3 ? 0 : 1 + random.nextInt(700));
        }
        return buffers;
    }

    private static long total(MemorySegment[] buffers) {
        long total = 0;
        for (MemorySegment b : buffers) {
            total += b.byteSize();
        }
        return total;
    }

    @Test
    void aGatheringWriteLandsWhereSeparateWritesWouldAndAScatteredReadBringsItBack() throws Exception {
        Path path = dir.resolve("disk.raw");
        Files.write(path, new byte[4 << 20]);
        Random random = new Random(42);
        try (Arena arena = Arena.ofConfined(); RawImage raw = RawImage.open(path, true)) {
            MemorySegment[] out = buffers(arena, 1500, 1);
            byte[] expected = new byte[(int) total(out)];
            random.nextBytes(expected);
            long at = 0;
            for (MemorySegment b : out) {
                MemorySegment.copy(MemorySegment.ofArray(expected), at, b, 0, b.byteSize());
                at += b.byteSize();
            }
            raw.write(12345, out, out.length);

            byte[] file = Files.readAllBytes(path);
            byte[] written = Arrays.copyOfRange(file, 12345, 12345 + expected.length);
            assertThat(written).isEqualTo(expected);

            MemorySegment[] in = buffers(arena, 1500, 1);
            raw.read(12345, in, in.length - 1); // all but the last buffer, which stays untouched
            at = 0;
            for (int i = 0; i < in.length - 1; i++) {
                assertThat(in[i].toArray(ValueLayout.JAVA_BYTE))
                        .isEqualTo(Arrays.copyOfRange(expected, (int) at, (int) (at + in[i].byteSize())));
                at += in[i].byteSize();
            }
            assertThat(in[in.length - 1].toArray(ValueLayout.JAVA_BYTE)).containsOnly(0);
        }
    }

    @Test
    void vectoredRequestsAreBoundsCheckedAndRefusedOnReadOnlyImages() throws Exception {
        Path path = dir.resolve("small.raw");
        Files.write(path, new byte[8192]);
        try (Arena arena = Arena.ofConfined(); RawImage raw = RawImage.open(path, true); RawImage ro = RawImage.open(path, false)) {
            MemorySegment[] two = {arena.allocate(4096), arena.allocate(4097)};
            assertThatThrownBy(() -> raw.read(0, two, 2)).hasMessageContaining("outside the disk");
            assertThatThrownBy(() -> raw.write(0, two, 2)).hasMessageContaining("outside the disk");
            assertThatThrownBy(() -> ro.write(0, two, 1)).isInstanceOf(ReadOnlyImageException.class);
            MemorySegment[] heap = {MemorySegment.ofArray(new byte[16]), MemorySegment.ofArray(new byte[16])};
            assertThatThrownBy(() -> raw.read(0, heap, 2)).hasMessageContaining("needs native memory");
        }
    }

    @Test
    void formatsWithoutTheirOwnVectoredPathGetTheSameBytes() throws Exception {
        Path path = dir.resolve("disk.qcow2");
        Images.create(path, CreateOptions.of(ImageFormat.QCOW2, 1 << 20));
        try (Arena arena = Arena.ofConfined(); BlockBackend qcow2 = Images.open(path, Images.OpenOptions.readWrite())) {
            MemorySegment[] out = buffers(arena, 40, 7);
            for (MemorySegment b : out) {
                b.fill((byte) 0x5a);
            }
            qcow2.write(70_000, out, out.length);
            MemorySegment[] in = buffers(arena, 40, 7);
            qcow2.read(70_000, in, in.length);
            long checked = 0;
            for (MemorySegment b : in) {
                for (byte v : b.toArray(ValueLayout.JAVA_BYTE)) {
                    assertThat(v).isEqualTo((byte) 0x5a);
                    checked++;
                }
            }
            assertThat(checked).isEqualTo(total(in));
        }
    }
}
