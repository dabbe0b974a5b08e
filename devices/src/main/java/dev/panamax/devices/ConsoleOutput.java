package dev.panamax.devices;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;

/**
 * The guest's console as the host sees it: the bytes a {@link Uart16550} transmits, buffered into
 * the console stream (written at each line end, when the buffer fills, and when the guest pauses
 * transmitting), split into lines for listeners, counted, and watched for a kernel panic. The
 * UART keeps registers and interrupts only and hands each byte here.
 *
 * <p>Threads: bytes arrive on the transmitting vCPU thread; {@link #flush()}, the counters and
 * {@link #panic()} may be called from any thread. The stream and the line listeners are called
 * under this object's lock (never the UART's), so a stream that can block (a socket) should be
 * buffered or made asynchronous by the caller. An {@link IOException} from the stream is counted
 * and its bytes dropped; the guest never sees it.
 */
public final class ConsoleOutput implements Uart16550.Events {
    /** Longest line handed to line listeners; longer ones arrive in pieces. */
    public static final int MAX_LINE = 4096;
    private static final int BUFFER = 4096;
    /** What Linux prints first when it panics. */
    private static final String PANIC_MARKER = "Kernel panic - not syncing";

    private final OutputStream stream;
    private final List<Consumer<String>> lineListeners = new CopyOnWriteArrayList<>();
    private volatile String panic;

    // Guarded by this.
    private final byte[] buffer = new byte[BUFFER];
    private int buffered;
    private final byte[] line = new byte[MAX_LINE];
    private int lineLength;
    private long written;
    private long errors;
    private long dropped;
    private long listenerErrors;

    /** @param stream where the console's bytes go, or null to discard them; not closed here */
    public ConsoleOutput(OutputStream stream) {
        this.stream = stream != null ? stream : OutputStream.nullOutputStream();
    }

    /**
     * Calls {@code listener} with every complete line the guest writes (without the line end), on
     * the transmitting vCPU thread: it must be quick and must not block. Lines longer than {@value
     * #MAX_LINE} bytes arrive in pieces. Bytes are decoded as UTF-8.
     */
    public void addLineListener(Consumer<String> listener) {
        lineListeners.add(Objects.requireNonNull(listener, "listener"));
    }

    @Override
    public synchronized void transmitted(byte b) {
        buffer[buffered++] = b;
        appendToLine(b);
        if (b == '\n' || buffered == buffer.length) {
            writeBuffered();
        }
    }

    /** The guest's driver stopped transmitting for now: what it wrote should be seen. */
    @Override
    public void transmitPaused() {
        flush();
    }

    /** Writes what is buffered to the stream. Safe from any thread. */
    public synchronized void flush() {
        writeBuffered();
    }

    private void appendToLine(byte b) {
        if (b == '\n') {
            int end = lineLength;
            if (end > 0 && line[end - 1] == '\r') {
                end--;
            }
            deliverLine(end);
            return;
        }
        line[lineLength++] = b;
        if (lineLength == line.length) {
            deliverLine(lineLength);
        }
    }

    private void deliverLine(int length) {
        String text = new String(line, 0, length, StandardCharsets.UTF_8);
        lineLength = 0;
        if (panic == null && text.contains(PANIC_MARKER)) {
            panic = text.strip();
        }
        for (Consumer<String> listener : lineListeners) {
            try {
                listener.accept(text);
            } catch (RuntimeException e) {
                listenerErrors++; // a broken watcher must not stop the guest's console
            }
        }
    }

    private void writeBuffered() {
        if (buffered == 0) {
            return;
        }
        try {
            stream.write(buffer, 0, buffered);
            stream.flush();
            written += buffered;
        } catch (IOException e) {
            errors++;
            dropped += buffered;
        }
        buffered = 0;
    }

    /** The first line with Linux's panic message the guest wrote, stripped; empty while there is none. */
    public Optional<String> panic() {
        return Optional.ofNullable(panic);
    }

    /** Bytes the console stream took so far. */
    public synchronized long bytesWritten() {
        return written;
    }

    /** Writes to the stream that failed; their bytes were dropped. */
    public synchronized long outputErrors() {
        return errors;
    }

    /** Bytes lost to failed writes. */
    public synchronized long droppedBytes() {
        return dropped;
    }

    /** Line listener calls that threw. */
    public synchronized long listenerErrors() {
        return listenerErrors;
    }
}
