package dev.panamax.rig;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Splits the rig's control stream into a run's output and the trailer the agent writes after it,
 * {@code "\npanamax-rig-exit <nonce> <status>\n"}. The nonce is random per run, so output cannot
 * fake it; bytes that might start the trailer are held back until they are known not to.
 */
final class ExitTrailer {
    private final byte[] prefix;
    private final OutputStream output;
    private int matched; // bytes of prefix matched so far (they are held back)
    private final StringBuilder status = new StringBuilder();
    private Integer exitStatus;

    ExitTrailer(String nonce, OutputStream output) {
        this.prefix = ("\npanamax-rig-exit " + nonce + " ").getBytes(StandardCharsets.US_ASCII);
        this.output = output;
    }

    /** Feeds bytes; returns how many were consumed (fewer than {@code len} once the trailer has ended). */
    int feed(byte[] b, int off, int len) throws IOException {
        int i = 0;
        for (; i < len && exitStatus == null; i++) accept(b[off + i]);
        return i;
    }

    /** The run's exit status, once the whole trailer has been seen; null before. */
    Integer exitStatus() {
        return exitStatus;
    }

    private void accept(byte c) throws IOException {
        if (matched == prefix.length) { // in the status digits
            if (c == '\n') {
                exitStatus = Integer.parseInt(status.toString());
            } else if (c >= '0' && c <= '9' && status.length() < 4) {
                status.append((char) c);
            } else {
                throw new IOException("malformed exit trailer from the rig: status " + status + (char) c);
            }
            return;
        }
        if (c == prefix[matched]) {
            matched++;
            return;
        }
        // Mismatch: what was held back is output. Only prefix[0] is '\n', so the only place the
        // trailer could start again is this byte itself.
        output.write(prefix, 0, matched);
        matched = 0;
        if (c == prefix[0]) matched = 1;
        else output.write(c);
    }
}
