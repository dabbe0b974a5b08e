package dev.panamax.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Arrays;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An output stream whose writes never block: they are queued for a thread of their own that
 * writes them to the target (a socket whose reader may be slow or gone). The guest's console runs
 * on a vCPU thread, which must not wait for a reader; when the queue is full, output is dropped
 * and counted.
 */
final class DetachedOutputStream extends OutputStream {
    private static final byte[] END = new byte[0];

    private final BlockingQueue<byte[]> queue = new ArrayBlockingQueue<>(4096);
    private final AtomicLong dropped = new AtomicLong();
    private final Thread writer;

    DetachedOutputStream(OutputStream target, String name) {
        writer = Thread.ofPlatform().daemon().name(name).start(() -> {
            try (target) {
                for (byte[] chunk; (chunk = queue.take()) != END; ) {
                    target.write(chunk);
                    if (queue.isEmpty()) {
                        target.flush();
                    }
                }
            } catch (IOException | InterruptedException e) {
                // the reader went away: later output is dropped
            }
        });
    }

    @Override
    public void write(int b) {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] bytes) {
        write(bytes, 0, bytes.length);
    }

    @Override
    public void write(byte[] bytes, int offset, int length) {
        if (!writer.isAlive() || !queue.offer(Arrays.copyOfRange(bytes, offset, offset + length))) {
            dropped.addAndGet(length);
        }
    }

    long droppedBytes() {
        return dropped.get();
    }

    /** Sends what is queued, then closes the target; waits a little for the reader. */
    @Override
    public void close() {
        try {
            queue.offer(END, 1, java.util.concurrent.TimeUnit.SECONDS);
            writer.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
