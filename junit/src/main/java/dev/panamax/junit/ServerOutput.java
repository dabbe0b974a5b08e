package dev.panamax.junit;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.function.Consumer;

/**
 * The guest server's stdout as it arrives (from a child process or through the rig), split into
 * {@link GuestWire} messages: a line that begins with {@link GuestWire#MARK} is a message once its
 * {@link GuestWire#END} arrives; any other line, or a message that does not parse, is passed on as a
 * {@link GuestWire.Log} line, so nothing the server says is lost and nothing malformed is acted on.
 */
final class ServerOutput extends OutputStream {
    private static final byte[] MARK = GuestWire.MARK.getBytes(StandardCharsets.US_ASCII);

    private final Consumer<GuestWire.ServerMessage> messages;
    private final ByteArrayOutputStream line = new ByteArrayOutputStream();
    private boolean overlong; // the current line passed MAX_LINE: dropped up to its newline

    ServerOutput(Consumer<GuestWire.ServerMessage> messages) {
        this.messages = messages;
    }

    @Override
    public void write(int b) {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public synchronized void write(byte[] b, int off, int len) {
        for (int i = off; i < off + len; i++) {
            byte c = b[i];
            if (c == '\n') {
                endLine();
            } else if (c == GuestWire.END && isMessage()) {
                String text = line.toString(StandardCharsets.US_ASCII);
                line.reset();
                dispatch(text.substring(MARK.length));
            } else if (!overlong) {
                line.write(c);
                if (line.size() > GuestWire.MAX_LINE) {
                    overlong = true;
                    line.reset();
                    messages.accept(new GuestWire.Log("(a line of the guest server's output longer than " + GuestWire.MAX_LINE
                            + " bytes, dropped)"));
                }
            }
        }
    }

    /** Whether the line so far begins with the mark (a message, not yet ended). */
    private boolean isMessage() {
        if (line.size() < MARK.length) return false;
        byte[] start = line.toByteArray();
        for (int i = 0; i < MARK.length; i++) {
            if (start[i] != MARK[i]) return false;
        }
        return true;
    }

    private void endLine() {
        if (!overlong && line.size() > 0) {
            messages.accept(new GuestWire.Log(line.toString(StandardCharsets.UTF_8)));
        }
        overlong = false;
        line.reset();
    }

    private void dispatch(String body) {
        GuestWire.ServerMessage message;
        try {
            message = GuestWire.decode(body);
        } catch (IllegalArgumentException e) {
            message = new GuestWire.Log("(a malformed message from the guest server: " + e.getMessage() + ")");
        }
        messages.accept(message);
    }

    /** Passes on what is left of an unfinished line, as a log line. */
    @Override
    public synchronized void close() {
        endLine();
    }
}
