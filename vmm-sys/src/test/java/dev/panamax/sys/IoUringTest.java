package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IoUringTest {
    @TempDir
    Path dir;

    @Test
    void aBatchOfScatteredWritesAndReadsMovesTheBytesAndEndsShortAtTheEndOfTheFile() throws IOException {
        Path file = dir.resolve("disk");
        byte[] original = new byte[64 << 10];
        new Random(7).nextBytes(original);
        Files.write(file, original);
        try (SparseFile f = SparseFile.open(file, true); IoUring ring = ringOrSkip(f, 8, 16);
                Arena arena = Arena.ofConfined()) {
            // Two writes of three and two scattered buffers.
            MemorySegment[] first = {filled(arena, 100, 1), filled(arena, 4000, 2), filled(arena, 3, 3)};
            MemorySegment[] second = {filled(arena, 512, 4), filled(arena, 512, 5)};
            assertThat(ring.add(true, 10, first, 3, 1)).isTrue();
            assertThat(ring.add(true, 20_000, second, 2, 2)).isTrue();
            Map<Long, Integer> results = new HashMap<>();
            ring.submitAndWait(results::put);
            assertThat(results).containsEntry(1L, 4103).containsEntry(2L, 1024);

            byte[] expected = original.clone();
            copy(first, expected, 10);
            copy(second, expected, 20_000);
            assertThat(Files.readAllBytes(file)).isEqualTo(expected);

            // Reads: one inside the file, one across its end (short), one past it (0 bytes).
            MemorySegment[] inside = {arena.allocate(7), arena.allocate(9000)};
            MemorySegment[] across = {arena.allocate(300)};
            MemorySegment[] past = {arena.allocate(50)};
            ring.add(false, 5, inside, 2, 10);
            ring.add(false, original.length - 100, across, 1, 11);
            ring.add(false, original.length + 4096, past, 1, 12);
            results.clear();
            ring.submitAndWait(results::put);
            assertThat(results).containsEntry(10L, 9007).containsEntry(11L, 100).containsEntry(12L, 0);
            byte[] read = new byte[9007];
            MemorySegment.copy(inside[0], JAVA_BYTE, 0, read, 0, 7);
            MemorySegment.copy(inside[1], JAVA_BYTE, 0, read, 7, 9000);
            byte[] want = new byte[9007];
            System.arraycopy(expected, 5, want, 0, 9007);
            assertThat(read).isEqualTo(want);
        }
    }

    @Test
    void aBatchTakesNoMoreEntriesOrBuffersThanTheRingHasRoomFor() throws IOException {
        Path file = dir.resolve("small");
        Files.write(file, new byte[8192]);
        try (SparseFile f = SparseFile.open(file, false); IoUring ring = ringOrSkip(f, 2, 3);
                Arena arena = Arena.ofConfined()) {
            MemorySegment[] two = {arena.allocate(512), arena.allocate(512)};
            assertThat(ring.add(false, 0, two, 2, 1)).isTrue();
            assertThat(ring.add(false, 0, two, 2, 2)).as("a second request of two buffers, with one left").isFalse();
            assertThat(ring.add(false, 0, two, 1, 3)).isTrue();
            assertThat(ring.add(false, 0, two, 1, 4)).as("a third request, with two entries").isFalse();
            Map<Long, Integer> results = new HashMap<>();
            ring.submitAndWait(results::put);
            assertThat(results).containsOnlyKeys(1L, 3L);
            // The next batch has the room again.
            assertThat(ring.add(false, 0, two, 2, 5)).isTrue();
            ring.submitAndWait(results::put);
            assertThat(results).containsEntry(5L, 1024);
        }
    }

    @Test
    void theRingRefusesEveryOperationButReadsAndWritesOfItsOwnFile() throws IOException {
        Path file = dir.resolve("disk");
        Path other = dir.resolve("other");
        Files.write(file, new byte[4096]);
        Files.write(other, new byte[] {42});
        try (SparseFile f = SparseFile.open(file, true); SparseFile o = SparseFile.open(other, false);
                IoUring ring = ringOrSkip(f, 4, 4); Arena arena = Arena.ofConfined()) {
            MemorySegment iov = arena.allocate(Libc.IOVEC);
            MemorySegment buffer = arena.allocate(1);
            iov.set(JAVA_LONG, 0, buffer.address());
            iov.set(JAVA_LONG, 8, 1);
            ring.queue(0, 0, 0, 0, 0, 0, 1); // IORING_OP_NOP
            ring.queue(IoAbi.IORING_OP_READV, 0, o.fd(), 0, iov.address(), 1, 2); // another file, by its descriptor
            ring.queue(18, IoAbi.IOSQE_FIXED_FILE, 0, 0, 0, 0, 3); // IORING_OP_OPENAT
            Map<Long, Integer> results = new HashMap<>();
            ring.submitAndWait(results::put);
            assertThat(results).containsEntry(1L, -Libc.EACCES).containsEntry(2L, -Libc.EACCES).containsEntry(3L, -Libc.EACCES);
            assertThat(buffer.get(JAVA_BYTE, 0)).isZero();
        }
    }

    @Test
    void aClosedRingNoLongerHoldsTheFileOrItsLock() throws IOException {
        Path file = dir.resolve("locked");
        Files.write(file, new byte[4096]);
        for (int round = 0; round < 20; round++) {
            try (SparseFile f = SparseFile.open(file, true)) {
                assertThat(f.tryLock(true)).isTrue();
                ringOrSkip(f, 4, 4).close();
            }
            try (SparseFile again = SparseFile.open(file, true)) {
                assertThat(again.tryLock(true)).as("the lock, round " + round).isTrue();
            }
        }
    }

    /** A ring of {@code file}, or the test aborted where this kernel or process refuses io_uring (virtio-blk then goes without). */
    private static IoUring ringOrSkip(SparseFile file, int entries, int maxVectors) throws NativeIoException {
        try {
            return file.ioUring(entries, maxVectors);
        } catch (NativeIoException e) {
            Assumptions.assumeFalse(e.errno() == Libc.ENOSYS || e.errno() == Libc.EPERM,
                    "this kernel or process refuses io_uring (" + e.getMessage() + ")");
            throw e;
        }
    }

    private static MemorySegment filled(Arena arena, int size, int seed) {
        MemorySegment s = arena.allocate(size);
        byte[] bytes = new byte[size];
        new Random(seed).nextBytes(bytes);
        MemorySegment.copy(bytes, 0, s, JAVA_BYTE, 0, size);
        return s;
    }

    private static void copy(MemorySegment[] buffers, byte[] into, int at) {
        for (MemorySegment b : buffers) {
            MemorySegment.copy(b, JAVA_BYTE, 0, into, at, (int) b.byteSize());
            at += (int) b.byteSize();
        }
    }
}
