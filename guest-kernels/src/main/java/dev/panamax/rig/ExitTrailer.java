package dev.panamax.rig;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Splits the rig's control stream into a run's output and what the agent writes between it: the
 * trailer after it, {@code "\npanamax-rig-exit <nonce> <status>\n"}, and the answers to the host's
 * pings, {@code "\npanamax-rig-alive <token>\n"}, which can come at any point of the output and are
 * taken out of it. The nonce is random per run and the token per rig, so output cannot fake either;
 * bytes that might start one are held back until they are known not to.
 */
final class ExitTrailer {
    private final byte[] exit;
    private final byte[] alive;
    private final OutputStream output;
    private int matchedExit; // bytes of exit matched so far
    private int matchedAlive; // bytes of alive matched so far; the longer of the two is held back
    private final StringBuilder status = new StringBuilder();
    private Integer exitStatus;

    ExitTrailer(String nonce, String aliveToken, OutputStream output) {
        this.exit = ("\npanamax-rig-exit " + nonce + " ").getBytes(StandardCharsets.US_ASCII);
        this.alive = ("\npanamax-rig-alive " + aliveToken + "\n").getBytes(StandardCharsets.US_ASCII);
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
        if (matchedExit == exit.length) { // in the status digits
            if (c == '\n') {
                exitStatus = Integer.parseInt(status.toString());
            } else if (c >= '0' && c <= '9' && status.length() < 4) {
                status.append((char) c);
            } else {
                throw new IOException("malformed exit trailer from the rig: status " + status + (char) c);
            }
            return;
        }
        int held = Math.max(matchedExit, matchedAlive);
        boolean extendsExit = matchedExit == held && c == exit[held];
        boolean extendsAlive = matchedAlive == held && c == alive[held];
        if (extendsExit || extendsAlive) {
            matchedExit = extendsExit ? held + 1 : 0;
            matchedAlive = extendsAlive ? held + 1 : 0;
            if (matchedAlive == alive.length) matchedExit = matchedAlive = 0; // an answer, dropped
            return;
        }
        // Mismatch: what was held back is output (both start alike, so either array spells it).
        // Only their first byte is '\n' (alive's last one ends a match), so the only place one could
        // start again is this byte itself.
        output.write(matchedExit == held ? exit : alive, 0, held);
        matchedExit = matchedAlive = 0;
        if (c == '\n') matchedExit = matchedAlive = 1;
        else output.write(c);
    }
}
