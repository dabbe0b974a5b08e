package dev.panamax.junit;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * The guest server's stdin: request lines queued by any thread, read by the thread that forwards
 * them (a child's stdin pipe or the rig's input). Unlike a {@link java.io.PipedInputStream} it does
 * not break when a writing thread ends, which a test method's thread does.
 */
final class RequestPipe extends InputStream {
    private static final byte[] END = new byte[0];

    private final LinkedBlockingQueue<byte[]> chunks = new LinkedBlockingQueue<>();
    private byte[] current = new byte[0];
    private int position;
    private boolean ended; // guarded by this: no more writes are taken
    private boolean drained; // read by the reading thread only: END was taken

    /** Queues {@code text}; false once the pipe has ended. */
    synchronized boolean send(String text) {
        if (ended) return false;
        chunks.add(text.getBytes(StandardCharsets.US_ASCII));
        return true;
    }

    /** Ends the stream after what is queued: the server sees its stdin end. */
    synchronized void end() {
        if (!ended) {
            ended = true;
            chunks.add(END);
        }
    }

    @Override
    public int read() {
        byte[] one = new byte[1];
        return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) {
        if (len == 0) return 0;
        while (position == current.length) {
            if (drained) return -1;
            try {
                current = chunks.take();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return -1;
            }
            position = 0;
            if (current == END) drained = true;
        }
        int n = Math.min(len, current.length - position);
        System.arraycopy(current, position, b, off, n);
        position += n;
        return n;
    }
}
