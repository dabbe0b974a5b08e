package dev.panamax.junit;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.function.Consumer;

/** Bytes as UTF-8 lines (without their newline or a carriage return before it) to a consumer; the rest of a line at {@link #close}. */
final class LineStream extends OutputStream {
    /** A longer line is passed on in pieces of this many bytes. */
    static final int MAX_LINE = 16 * 1024;

    private final Consumer<String> lines;
    private final ByteArrayOutputStream line = new ByteArrayOutputStream();

    LineStream(Consumer<String> lines) {
        this.lines = lines;
    }

    @Override
    public void write(int b) {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public synchronized void write(byte[] b, int off, int len) {
        for (int i = off; i < off + len; i++) {
            if (b[i] == '\n') {
                pass();
            } else {
                line.write(b[i]);
                if (line.size() == MAX_LINE) pass();
            }
        }
    }

    private void pass() {
        String text = line.toString(StandardCharsets.UTF_8);
        line.reset();
        lines.accept(text.endsWith("\r") ? text.substring(0, text.length() - 1) : text);
    }

    @Override
    public synchronized void close() {
        if (line.size() > 0) pass();
    }
}
