package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class HostRandomTest {

    @Test
    void fillsEveryByteOfABufferAndNeverTheSameTwice() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment first = arena.allocate(1 << 20);
            MemorySegment second = arena.allocate(1 << 20);
            HostRandom.fill(first);
            HostRandom.fill(second);
            // Every 64-byte stretch holds a non-zero byte (all zeros by chance: 2^-512), up to the last.
            for (long offset = 0; offset < first.byteSize(); offset += 64) {
                assertThat(hasNonZero(first.asSlice(offset, 64))).as("bytes %d to %d filled", offset, offset + 63).isTrue();
            }
            assertThat(first.mismatch(second)).as("two fills differ").isNotEqualTo(-1L);
        }
    }

    @Test
    void fillsSmallAndEmptyBuffersExactly() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(80);
            HostRandom.fill(buffer.asSlice(8, 64));
            HostRandom.fill(buffer.asSlice(8, 0));
            assertThat(buffer.get(ValueLayout.JAVA_LONG_UNALIGNED, 0)).as("nothing before the slice").isZero();
            assertThat(buffer.get(ValueLayout.JAVA_LONG_UNALIGNED, 72)).as("nothing after it").isZero();
            assertThat(hasNonZero(buffer.asSlice(8, 64))).isTrue();
        }
    }

    @Test
    void thisHostHasGetrandom() {
        assertThat(HostRandom.usesGetrandom()).as("glibc >= 2.25 and Linux >= 3.17").isTrue();
    }

    private static boolean hasNonZero(MemorySegment segment) {
        for (long i = 0; i < segment.byteSize(); i++) {
            if (segment.get(ValueLayout.JAVA_BYTE, i) != 0) {
                return true;
            }
        }
        return false;
    }
}
