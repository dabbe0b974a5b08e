package dev.panamax.rig;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** Copies a command's output to an echo stream as it comes and keeps its last {@link RunResult#KEPT_OUTPUT} bytes. */
final class OutputTail extends OutputStream {
    private final OutputStream echo;
    private ByteArrayOutputStream kept = new ByteArrayOutputStream();

    OutputTail(OutputStream echo) {
        this.echo = echo;
    }

    @Override
    public void write(int b) {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public synchronized void write(byte[] b, int off, int len) {
        try {
            echo.write(b, off, len);
            echo.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("could not pass on the command's output", e);
        }
        kept.write(b, off, len);
        if (kept.size() > 2 * RunResult.KEPT_OUTPUT) {
            byte[] all = kept.toByteArray();
            kept = new ByteArrayOutputStream();
            kept.write(all, all.length - RunResult.KEPT_OUTPUT, RunResult.KEPT_OUTPUT);
        }
    }

    synchronized String text() {
        byte[] all = kept.toByteArray();
        int from = Math.max(0, all.length - RunResult.KEPT_OUTPUT);
        return new String(all, from, all.length - from, StandardCharsets.UTF_8);
    }
}
