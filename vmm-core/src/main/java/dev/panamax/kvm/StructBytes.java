package dev.panamax.kvm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * A struct's bytes as KVM reads and writes them (little-endian, padding included), for state that is
 * saved whole. Goes through native memory because a {@code byte[]} segment does not allow aligned
 * wider accesses.
 */
final class StructBytes {
    private StructBytes() {}

    /** The bytes {@code encode} writes into a zeroed struct of {@code layout}. */
    static byte[] of(MemoryLayout layout, Consumer<MemorySegment> encode) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(layout);
            encode.accept(s);
            return s.toArray(JAVA_BYTE);
        }
    }

    /** {@code decode} applied to a struct of {@code layout} holding {@code bytes}, which must be exactly its size. */
    static <T> T decode(MemoryLayout layout, byte[] bytes, Function<MemorySegment, T> decode) {
        requireSize(layout, bytes);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(layout);
            MemorySegment.copy(bytes, 0, s, JAVA_BYTE, 0, bytes.length);
            return decode.apply(s);
        }
    }

    static void requireSize(MemoryLayout layout, byte[] bytes) {
        if (bytes.length != layout.byteSize()) {
            throw new IllegalArgumentException("struct " + layout.name().orElse("?") + " is " + layout.byteSize()
                    + " bytes, not " + bytes.length);
        }
    }
}
