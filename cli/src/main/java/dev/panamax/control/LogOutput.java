package dev.panamax.control;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogManager;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.logging.SimpleFormatter;

/**
 * The VMM's log as a {@link LoggerConfig} asks: Panamax logs through {@link System.Logger}, whose
 * records reach {@code java.util.logging}'s root logger; while installed, this is the root logger's
 * only handler, writing each record as one line in Firecracker's layout,
 * {@code 2026-12-03T14:20:01.123456789 [ID:THREAD:LEVEL:ORIGIN] message} (level and origin only
 * when asked for). {@link #close()} puts the handlers and level it replaced back, so outputs are
 * closed in the reverse order of their installation (a replaced one before its replacement is installed).
 *
 * <p>Lines are written by a thread of their own from a bounded queue: a named pipe nobody reads
 * fills up and blocks that thread only. While the queue is full, lines are dropped and counted
 * ({@link #missedLines()}), as Firecracker counts its missed log lines; the VMM never waits.
 */
public final class LogOutput implements AutoCloseable {
    private static final int QUEUE_LINES = 4096;
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.nnnnnnnnn");
    /** The S_IFMT bits of st_mode, and those of a named pipe. */
    private static final int S_IFMT = 0170000;
    private static final int S_IFIFO = 0010000;

    private final LoggerConfig config;
    private final String instanceId;
    private final WritableByteChannel sink;
    private final BlockingQueue<Object> queue = new ArrayBlockingQueue<>(QUEUE_LINES);
    private final AtomicLong missed = new AtomicLong();
    private final Thread writer;
    private final Handler handler;
    private final Logger root = LogManager.getLogManager().getLogger("");
    private List<Handler> replaced; // guarded by LogOutput.class; null until installed
    private Level replacedLevel; // guarded by LogOutput.class
    private boolean closed; // guarded by this

    /** A request to the writer thread: count down once every line queued before it is written. */
    private record Flush(CountDownLatch done) {}

    /** The writer thread's sign to stop, after the lines before it. */
    private static final Object STOP = new Object();

    private LogOutput(LoggerConfig config, String instanceId, WritableByteChannel sink) {
        this.config = config;
        this.instanceId = instanceId;
        this.sink = sink;
        this.handler = new LineHandler(); // reads config
        this.writer = Thread.ofPlatform().daemon().name("logger").unstarted(this::writeLines);
    }

    /**
     * Opens the configured output and makes it the VMM's log.
     *
     * @param instanceId the instance's id, the first part of each line's tag
     * @throws IOException with a sentence when the log path cannot be opened for writing
     */
    public static LogOutput install(LoggerConfig config, String instanceId) throws IOException {
        LogOutput output = open(config, instanceId);
        output.install();
        return output;
    }

    /**
     * Opens the configured output without making it the VMM's log yet ({@link #install()} does):
     * so that a log being replaced stays in place when its replacement cannot be opened.
     *
     * @throws IOException with a sentence when the log path cannot be opened for writing
     */
    public static LogOutput open(LoggerConfig config, String instanceId) throws IOException {
        Objects.requireNonNull(instanceId, "instanceId");
        LogOutput output = new LogOutput(config, instanceId, open(config.logPath()));
        output.writer.start();
        return output;
    }

    /** Makes this output the root logger's only handler, keeping those it replaces for {@link #close()}; once. */
    public void install() {
        synchronized (LogOutput.class) { // one output at a time owns the root logger
            if (replaced != null) {
                throw new IllegalStateException("installed already");
            }
            replaced = List.of(root.getHandlers());
            replacedLevel = root.getLevel();
            for (Handler h : replaced) {
                root.removeHandler(h);
            }
            root.addHandler(handler);
            root.setLevel(julLevel(config.level()));
        }
    }

    /** Where the lines go: standard error, a named pipe opened without waiting for a reader, or a file appended to. */
    private static WritableByteChannel open(Path path) throws IOException {
        if (path == null) {
            return Channels.newChannel(new OutputStream() { // System.err as it is at each write (tests replace it)
                @Override
                public void write(int b) {
                    System.err.write(b);
                }

                @Override
                public void write(byte[] b, int off, int len) {
                    System.err.write(b, off, len);
                    System.err.flush();
                }
            });
        }
        try {
            if (Files.exists(path, LinkOption.NOFOLLOW_LINKS) && !Files.isRegularFile(path)) {
                int mode = (Integer) Files.getAttribute(path, "unix:mode");
                if ((mode & S_IFMT) != S_IFIFO) {
                    throw new IOException(path + " is neither a regular file nor a named pipe");
                }
                // Read and write: opening a pipe for writing alone waits for a reader; this never does.
                return FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            }
            return FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            String reason = e.getMessage() == null || e.getMessage().equals(path.toString()) ? e.toString() : e.getMessage();
            throw new IOException("cannot open " + path + " for the log: " + reason, e);
        }
    }

    /** The {@code java.util.logging} level that lets through what {@code level} asks for ({@link System.Logger}'s mapping). */
    static Level julLevel(LoggerConfig.Level level) {
        return switch (level) {
            case OFF -> Level.OFF;
            case ERROR -> Level.SEVERE;
            case WARNING -> Level.WARNING;
            case INFO -> Level.INFO;
            case DEBUG -> Level.FINE;
            case TRACE -> Level.ALL;
        };
    }

    /** Firecracker's name (Rust's {@code log} crate's) for a record's level. */
    private static String levelName(Level level) {
        int v = level.intValue();
        if (v >= Level.SEVERE.intValue()) {
            return "ERROR";
        } else if (v >= Level.WARNING.intValue()) {
            return "WARN";
        } else if (v >= Level.INFO.intValue()) {
            return "INFO";
        } else if (v >= Level.FINE.intValue()) {
            return "DEBUG";
        }
        return "TRACE";
    }

    /** The configuration installed. */
    public LoggerConfig config() {
        return config;
    }

    /** Lines dropped because the queue was full (the output did not keep up). */
    public long missedLines() {
        return missed.get();
    }

    /**
     * Waits until the lines queued so far are written, at most {@code timeoutMillis}: for tests and
     * for the end of the process.
     *
     * @return whether they were
     */
    public boolean flush(long timeoutMillis) throws InterruptedException {
        Flush f = new Flush(new CountDownLatch(1));
        if (!queue.offer(f, timeoutMillis, TimeUnit.MILLISECONDS)) {
            return false;
        }
        return f.done().await(timeoutMillis, TimeUnit.MILLISECONDS);
    }

    private void enqueue(String line) {
        if (!queue.offer(line)) {
            missed.incrementAndGet();
        }
    }

    private void writeLines() {
        try {
            while (true) {
                Object next = queue.take();
                if (next == STOP) {
                    return;
                } else if (next instanceof Flush f) {
                    f.done().countDown();
                } else {
                    ByteBuffer bytes = ByteBuffer.wrap(((String) next).getBytes(StandardCharsets.UTF_8));
                    try {
                        while (bytes.hasRemaining()) {
                            sink.write(bytes);
                        }
                    } catch (IOException e) {
                        missed.incrementAndGet(); // a log that cannot be written must not stop the VMM
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Puts back the handlers and level replaced, writes what is queued (briefly: a pipe may be full), and closes the output. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        synchronized (LogOutput.class) {
            if (replaced != null) {
                root.removeHandler(handler);
                for (Handler h : replaced) {
                    root.addHandler(h);
                }
                root.setLevel(replacedLevel);
            }
        }
        try {
            flush(1000);
            queue.offer(STOP, 1, TimeUnit.SECONDS);
            writer.join(1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        writer.interrupt(); // still blocked on a full pipe: give up its lines
        try {
            sink.close();
        } catch (IOException e) {
            // nothing more to log to
        }
    }

    /** Formats on the logging thread (which the line names) and queues the line. */
    private final class LineHandler extends Handler {
        private final SimpleFormatter messages = new SimpleFormatter();

        LineHandler() {
            setLevel(julLevel(config.level()));
        }

        @Override
        public void publish(LogRecord r) {
            if (!isLoggable(r) || (config.module() != null && (r.getLoggerName() == null || !r.getLoggerName().startsWith(config.module())))) {
                return;
            }
            StringBuilder line = new StringBuilder(160).append(LocalDateTime.now().format(TIME)).append(" [").append(instanceId)
                    .append(':').append(Thread.currentThread().getName());
            if (config.showLevel()) {
                line.append(':').append(levelName(r.getLevel()));
            }
            if (config.showLogOrigin()) {
                line.append(':').append(r.getSourceClassName() == null ? r.getLoggerName() : r.getSourceClassName());
                if (r.getSourceMethodName() != null) {
                    line.append('.').append(r.getSourceMethodName());
                }
            }
            line.append("] ").append(messages.formatMessage(r));
            if (r.getThrown() != null) {
                line.append(": ").append(r.getThrown());
            }
            enqueue(line.append('\n').toString());
        }

        @Override
        public void flush() {}

        @Override
        public void close() {}
    }
}
