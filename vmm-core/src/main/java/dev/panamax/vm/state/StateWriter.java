package dev.panamax.vm.state;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.function.Consumer;

/**
 * Writes state in the snapshot encoding ({@code docs/snapshot-format.md}): big-endian integers,
 * byte strings and UTF-8 text with a u32 length before them, sections named by a device id. Every
 * write has a matching {@link StateReader} read.
 */
public final class StateWriter {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream(4096);

    public StateWriter bool(boolean value) {
        return u8(value ? 1 : 0);
    }

    public StateWriter u8(int value) {
        out.write(value);
        return this;
    }

    public StateWriter u16(int value) {
        out.write(value >>> 8);
        out.write(value);
        return this;
    }

    public StateWriter i32(int value) {
        for (int shift = 24; shift >= 0; shift -= 8) {
            out.write(value >>> shift);
        }
        return this;
    }

    public StateWriter i64(long value) {
        for (int shift = 56; shift >= 0; shift -= 8) {
            out.write((int) (value >>> shift));
        }
        return this;
    }

    /** A u32 length, then the bytes. */
    public StateWriter bytes(byte[] value) {
        i32(value.length);
        out.writeBytes(value);
        return this;
    }

    public StateWriter i32s(int[] values) {
        i32(values.length);
        for (int v : values) {
            i32(v);
        }
        return this;
    }

    public StateWriter i64s(long[] values) {
        i32(values.length);
        for (long v : values) {
            i64(v);
        }
        return this;
    }

    /** UTF-8 text with its byte length before it. */
    public StateWriter string(String value) {
        return bytes(value.getBytes(StandardCharsets.UTF_8));
    }

    /** A section: {@code name}, then the byte length of what {@code body} writes, then that. */
    public StateWriter section(String name, Consumer<StateWriter> body) {
        StateWriter inner = new StateWriter();
        body.accept(inner);
        string(name);
        return bytes(inner.toByteArray());
    }

    /** Writes {@code part}'s state as a section named {@code name}. */
    public StateWriter section(String name, Stateful part) {
        return section(name, part::saveState);
    }

    public int size() {
        return out.size();
    }

    public byte[] toByteArray() {
        return out.toByteArray();
    }
}
