package dev.panamax.vm.state;

import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.ByteBuffer;
import java.util.function.Consumer;

/**
 * Reads what a {@link StateWriter} wrote, from bytes that may be truncated or hostile: every read
 * checks that the bytes are there, every length and count is checked against a limit the caller
 * gives before anything is allocated, and a section must be read to its last byte. A failure is a
 * {@link StateFormatException} that names the field ({@code what}) and the section.
 */
public final class StateReader {
    private final byte[] data;
    private final String where;
    private int position;
    private final int limit;

    public StateReader(byte[] data, String where) {
        this(data, 0, data.length, where);
    }

    private StateReader(byte[] data, int offset, int limit, String where) {
        this.data = data;
        this.position = offset;
        this.limit = limit;
        this.where = where;
    }

    /** What this reader reads, for messages: "the snapshot", "section serial0 of the snapshot". */
    public String where() {
        return where;
    }

    public int remaining() {
        return limit - position;
    }

    private void need(int n, String what) {
        if (n > remaining()) {
            throw fail(what + " is cut off (" + n + " bytes needed, " + remaining() + " left)");
        }
    }

    /** An exception naming this reader's place: "{@code where}: {@code problem}". */
    public StateFormatException fail(String problem) {
        return new StateFormatException(where + ": " + problem);
    }

    public boolean bool(String what) {
        int v = u8(what);
        if (v > 1) {
            throw fail(what + " is " + v + ", not 0 or 1");
        }
        return v == 1;
    }

    public int u8(String what) {
        need(1, what);
        return data[position++] & 0xff;
    }

    public int u16(String what) {
        need(2, what);
        int v = (data[position] & 0xff) << 8 | (data[position + 1] & 0xff);
        position += 2;
        return v;
    }

    public int i32(String what) {
        need(4, what);
        int v = 0;
        for (int i = 0; i < 4; i++) {
            v = v << 8 | (data[position++] & 0xff);
        }
        return v;
    }

    public long i64(String what) {
        need(8, what);
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = v << 8 | (data[position++] & 0xff);
        }
        return v;
    }

    /** An int that must lie in {@code [min, max]}. */
    public int i32In(int min, int max, String what) {
        int v = i32(what);
        if (v < min || v > max) {
            throw fail(what + " is " + v + ", outside " + min + " to " + max);
        }
        return v;
    }

    /** A u32 count or length, at most {@code max}; checked before anything is allocated for it. */
    public int count(int max, String what) {
        int n = i32(what + " count");
        if (n < 0 || n > max) {
            throw fail(what + " count is " + Integer.toUnsignedString(n) + ", more than the " + max + " allowed");
        }
        return n;
    }

    /** Length-prefixed bytes, at most {@code max} of them. */
    public byte[] bytes(int max, String what) {
        int n = count(max, what);
        need(n, what);
        byte[] v = new byte[n];
        System.arraycopy(data, position, v, 0, n);
        position += n;
        return v;
    }

    /** Length-prefixed bytes that must be exactly {@code size} long (a KVM struct, a register file). */
    public byte[] bytesOfSize(int size, String what) {
        int n = i32(what + " length");
        if (n != size) {
            throw fail(what + " is " + Integer.toUnsignedString(n) + " bytes, not " + size);
        }
        need(n, what);
        byte[] v = new byte[n];
        System.arraycopy(data, position, v, 0, n);
        position += n;
        return v;
    }

    public int[] i32s(int max, String what) {
        int n = count(max, what);
        need(4 * n, what);
        int[] v = new int[n];
        for (int i = 0; i < n; i++) {
            v[i] = i32(what);
        }
        return v;
    }

    public long[] i64s(int max, String what) {
        int n = count(max, what);
        need(8 * n, what);
        long[] v = new long[n];
        for (int i = 0; i < n; i++) {
            v[i] = i64(what);
        }
        return v;
    }

    /** UTF-8 text of at most {@code maxBytes} bytes; malformed UTF-8 is refused. */
    public String string(int maxBytes, String what) {
        byte[] raw = bytes(maxBytes, what);
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(raw)).toString();
        } catch (CharacterCodingException e) {
            throw fail(what + " is not UTF-8 text");
        }
    }

    /**
     * The next section, which must be named {@code name}: a reader over its bytes alone. Reading
     * past its end fails; {@link #end()} checks nothing was left unread.
     */
    public StateReader section(String name) {
        String found = string(256, "section name");
        if (!found.equals(name)) {
            throw fail("found section '" + found + "' where '" + name + "' belongs: the snapshot was taken of another VM configuration");
        }
        // The limit is what is left after the length itself: remaining() before reading it would
        // let a length 4 bytes too long through, and the section's reads run off the array.
        int length = count(Integer.MAX_VALUE, "section " + name + " length");
        need(length, "section " + name);
        StateReader inner = new StateReader(data, position, position + length, "section " + name + " of " + where);
        position += length;
        return inner;
    }

    /** Reads section {@code name} into {@code part} and checks it was read whole. */
    public void section(String name, Stateful part) {
        section(name, part::restoreState);
    }

    /** Reads section {@code name} with {@code body} and checks it was read whole. */
    public void section(String name, Consumer<StateReader> body) {
        StateReader inner = section(name);
        body.accept(inner);
        inner.end();
    }

    /** Checks that every byte was read: trailing bytes mean another layout than this code's. */
    public void end() {
        if (remaining() != 0) {
            throw fail(remaining() + " bytes left over after the last field");
        }
    }
}
