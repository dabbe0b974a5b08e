package dev.panamax.control;

import dev.panamax.api.VmMetrics;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;

/**
 * The one metrics registry of a VMM process and its VM, after Firecracker's metrics system: the
 * API's own counts (requests by kind, their failures, the latencies of pause, resume and snapshots),
 * and once the VM runs, its vCPUs' and devices' counts ({@link VmMetrics}), all under Firecracker's
 * group and metric names.
 *
 * <p>Read three ways: {@link #flushLine} (Firecracker's JSON line, each counter the change since the
 * previous flush, as its {@code SharedIncMetric}s), written by {@link #flush} to the file or named pipe
 * {@link #configure} gave, on demand ({@code FlushMetrics}) and every {@link #FLUSH_PERIOD}; {@link
 * #counters} (running totals, for {@code GET /metrics}); {@link #prometheus} (the Prometheus or OpenMetrics
 * text, made by Micrometer's Prometheus registry from the same totals). Thread-safe.
 *
 * <p>A named pipe is opened for reading and writing, as Firecracker does, so that opening it never
 * waits for a reader, and lines are written on a thread of their own: a pipe nobody reads fills
 * up and blocks that thread, never a request or a vCPU. Lines that find it still blocked are
 * dropped and counted ({@code logger.missed_metrics_count}); a failed write counts as {@code logger.metrics_fails}.
 */
public final class MetricsRegistry implements AutoCloseable {
    /** Firecracker's period between two flushes. */
    public static final Duration FLUSH_PERIOD = Duration.ofSeconds(60);
    /** Prometheus' text format, version 0.0.4. */
    public static final String PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";
    /** OpenMetrics' text format. */
    public static final String OPENMETRICS_TEXT = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    /** Lines waiting for a slow reader, beyond the one being written; more are dropped. */
    private static final int QUEUED_LINES = 4;

    /** Counters the API and the registry count themselves, by group and name. */
    private final Map<String, Map<String, LongAdder>> own = new ConcurrentHashMap<>();
    /** Firecracker's {@code latencies_us}: the last duration of each, in microseconds (a value, not a counter). */
    private final Map<String, AtomicLong> latencies = new ConcurrentHashMap<>();
    private volatile Supplier<VmMetrics> vm; // null until the VM is there

    private final Object flushLock = new Object();
    private final Map<String, Long> flushed = new HashMap<>(); // guarded by flushLock: "group.name" -> total at the last flush
    private FileChannel destination; // guarded by flushLock; null until configure
    private Path destinationPath; // guarded by flushLock
    private ThreadPoolExecutor writer; // guarded by flushLock
    private ScheduledExecutorService timer; // guarded by flushLock

    private final PrometheusMeterRegistry prometheus = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final Set<String> registered = new HashSet<>(); // guarded by prometheus: meters made so far, by "group.name"
    private volatile Map<String, Map<String, Long>> scraped = Map.of(); // the totals the meters read, taken at each scrape

    private final Duration flushPeriod;

    public MetricsRegistry() {
        this(FLUSH_PERIOD);
    }

    /** A registry whose configured destination gets a line every {@code flushPeriod} (tests shorten it). */
    MetricsRegistry(Duration flushPeriod) {
        this.flushPeriod = flushPeriod;
        // Groups Firecracker always writes, present from the start even when nothing was counted.
        for (String name : new String[] {"missed_metrics_count", "metrics_fails"}) {
            counter("logger", name);
        }
        counter("api_server", "sync_response_fails");
    }

    /** The VM's counts, from now on: {@code source} is called at each read. */
    public void attach(Supplier<VmMetrics> source) {
        vm = source;
    }

    /** Makes the registry's own counter {@code group.name}, so that it shows before it first moves. */
    public void declare(String group, String name) {
        counter(group, name);
    }

    /** Adds one to the registry's own counter {@code group.name} (made at first use). */
    public void increment(String group, String name) {
        counter(group, name).increment();
    }

    private LongAdder counter(String group, String name) {
        return own.computeIfAbsent(group, g -> new ConcurrentHashMap<>()).computeIfAbsent(name, n -> new LongAdder());
    }

    /** Records the duration of {@code name} in {@code latencies_us} (Firecracker keeps the last one). */
    public void latency(String name, long micros) {
        latencies.computeIfAbsent(name, n -> new AtomicLong()).set(micros);
    }

    /**
     * Running totals by Firecracker group and name: the registry's own, then the VM's once it is
     * there ({@code vcpu}, {@code block} and {@code net} summed over the devices and per device
     * as {@code block_ID} and {@code net_ID}, {@code uart}, {@code vsock}).
     */
    public Map<String, Map<String, Long>> counters() {
        Map<String, Map<String, Long>> groups = new LinkedHashMap<>();
        own.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(g -> {
            Map<String, Long> values = new LinkedHashMap<>();
            g.getValue().entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> values.put(e.getKey(), e.getValue().sum()));
            groups.put(g.getKey(), values);
        });
        Supplier<VmMetrics> source = vm;
        if (source != null) {
            addVm(groups, source.get());
        }
        return groups;
    }

    private static void addVm(Map<String, Map<String, Long>> groups, VmMetrics m) {
        VmMetrics.Vcpus v = m.vcpus();
        groups.put("vcpu", ordered("exit_io_in", v.ioIn(), "exit_io_out", v.ioOut(), "exit_mmio_read", v.mmioRead(),
                "exit_mmio_write", v.mmioWrite(), "failures", v.failures(), "exit_hlt", v.hlt(), "exit_shutdown", v.shutdown(),
                "exits", v.exits()));
        Map<String, Long> allBlock = new LinkedHashMap<>();
        Map<String, Map<String, Long>> perBlock = new LinkedHashMap<>();
        m.drives().entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> {
            VmMetrics.Block b = e.getValue();
            Map<String, Long> values = ordered("read_count", b.readCount(), "read_bytes", b.readBytes(), "write_count", b.writeCount(),
                    "write_bytes", b.writeBytes(), "flush_count", b.flushCount(), "invalid_reqs_count", b.invalidRequests(),
                    "execute_fails", b.ioErrors(), "rate_limiter_throttled_events", b.throttledEvents());
            perBlock.put("block_" + e.getKey(), values);
            values.forEach((k, x) -> allBlock.merge(k, x, Long::sum));
        });
        Map<String, Long> allNet = new LinkedHashMap<>();
        Map<String, Map<String, Long>> perNet = new LinkedHashMap<>();
        m.networkInterfaces().entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> {
            VmMetrics.Net n = e.getValue();
            Map<String, Long> values = ordered("rx_packets_count", n.rxPackets(), "rx_bytes_count", n.rxBytes(), "rx_dropped",
                    n.rxDropped(), "rx_rate_limiter_throttled", n.rxThrottled(), "tx_packets_count", n.txPackets(), "tx_bytes_count",
                    n.txBytes(), "tx_dropped", n.txDropped(), "tx_rate_limiter_throttled", n.txThrottled());
            perNet.put("net_" + e.getKey(), values);
            values.forEach((k, x) -> allNet.merge(k, x, Long::sum));
        });
        if (!perBlock.isEmpty()) {
            groups.put("block", allBlock);
            groups.putAll(perBlock);
        }
        if (!perNet.isEmpty()) {
            groups.put("net", allNet);
            groups.putAll(perNet);
        }
        groups.put("uart", ordered("write_count", m.consoleOutputBytes()));
        if (m.vsock() != null) {
            VmMetrics.Vsock s = m.vsock();
            groups.put("vsock", ordered("rx_bytes_count", s.rxBytes(), "tx_bytes_count", s.txBytes(), "tx_dropped", s.dropped(),
                    "tx_reset", s.reset(), "conns_refused", s.refused()));
        }
    }

    private static Map<String, Long> ordered(Object... namesAndValues) {
        Map<String, Long> m = new LinkedHashMap<>();
        for (int i = 0; i < namesAndValues.length; i += 2) {
            m.put((String) namesAndValues[i], (Long) namesAndValues[i + 1]);
        }
        return m;
    }

    /** Firecracker's {@code latencies_us}: the last duration of each operation timed so far. */
    public Map<String, Long> latencies() {
        Map<String, Long> values = new LinkedHashMap<>();
        latencies.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> values.put(e.getKey(), e.getValue().get()));
        return values;
    }

    /**
     * Firecracker's metrics line (without its newline): {@code utc_timestamp_ms}, then each group with
     * each counter's change since the previous call, then {@code latencies_us} as values. Each call
     * starts the next interval, as a flush does in Firecracker.
     */
    public String flushLine(long utcMillis) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("utc_timestamp_ms", utcMillis);
        synchronized (flushLock) {
            counters().forEach((group, values) -> {
                Map<String, Object> deltas = new LinkedHashMap<>();
                values.forEach((name, total) -> {
                    Long before = flushed.put(group + "." + name, total);
                    deltas.put(name, total - (before == null ? 0 : before));
                });
                line.put(group, deltas);
            });
        }
        line.put("latencies_us", new LinkedHashMap<String, Object>(latencies()));
        return Json.write(line);
    }

    /**
     * Firecracker's {@code PUT /metrics}: from now on the lines go to {@code path}, an existing named
     * pipe or a file (made if missing, appended to), and are flushed every {@link #FLUSH_PERIOD} (the
     * registry's period).
     *
     * @throws IllegalStateException when a destination was configured already (Firecracker's too)
     * @throws IOException with a sentence when the path cannot be opened
     */
    public void configure(Path path) throws IOException {
        synchronized (flushLock) {
            if (destination != null) {
                throw new IllegalStateException("the metrics go to " + destinationPath + " already; Firecracker's metrics"
                        + " system is set up once");
            }
            FileChannel channel;
            try {
                BasicFileAttributes attributes = Files.readAttributes(path, BasicFileAttributes.class);
                if (attributes.isDirectory()) {
                    throw new IOException(path + " is a directory; give a file or a named pipe");
                }
                // A pipe opened for reading too never waits for a reader, and never breaks when one leaves.
                channel = attributes.isOther() ? FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)
                        : FileChannel.open(path, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
            } catch (NoSuchFileException e) {
                channel = FileChannel.open(path, StandardOpenOption.WRITE, StandardOpenOption.APPEND, StandardOpenOption.CREATE);
            }
            destination = channel;
            destinationPath = path;
            writer = new ThreadPoolExecutor(1, 1, 0, TimeUnit.SECONDS, new ArrayBlockingQueue<>(QUEUED_LINES),
                    Thread.ofPlatform().name("metrics-writer").daemon(true).factory());
            timer = Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform().name("metrics-flush").daemon(true).factory());
            timer.scheduleAtFixedRate(this::flush, flushPeriod.toMillis(), flushPeriod.toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    /** Where the lines go, or null before {@link #configure}. */
    public Path destination() {
        synchronized (flushLock) {
            return destinationPath;
        }
    }

    /**
     * Takes a line ({@link #flushLine}) and hands it to the writer. The future completes with true once
     * it is written, false when it is not: no destination configured, the writer still blocked by
     * earlier lines (the line is dropped), or the write failed.
     */
    public CompletableFuture<Boolean> flush() {
        synchronized (flushLock) {
            if (destination == null) {
                return CompletableFuture.completedFuture(false);
            }
            ByteBuffer bytes = ByteBuffer.wrap((flushLine(System.currentTimeMillis()) + "\n").getBytes(StandardCharsets.UTF_8));
            FileChannel channel = destination;
            try {
                return CompletableFuture.supplyAsync(() -> write(channel, bytes), writer);
            } catch (RejectedExecutionException e) { // a full queue: nobody reads the pipe
                increment("logger", "missed_metrics_count");
                return CompletableFuture.completedFuture(false);
            }
        }
    }

    private boolean write(FileChannel channel, ByteBuffer bytes) {
        try {
            while (bytes.hasRemaining()) {
                channel.write(bytes);
            }
            return true;
        } catch (IOException e) {
            increment("logger", "metrics_fails");
            return false;
        }
    }

    /**
     * The totals in the Prometheus text format ({@link #PROMETHEUS_TEXT}) or OpenMetrics' ({@link
     * #OPENMETRICS_TEXT}), by Micrometer: each Firecracker counter as {@code panamax_GROUP_NAME_total},
     * per-device groups as one metric with the device in a label ({@code drive}, {@code iface}),
     * {@code latencies_us} as gauges.
     */
    public String prometheus(String contentType) {
        Map<String, Map<String, Long>> totals = counters();
        synchronized (prometheus) {
            scraped = totals;
            totals.forEach((group, values) -> values.keySet().forEach(name -> register(group, name)));
            latencies.keySet().forEach(this::registerLatency);
            return prometheus.scrape(contentType);
        }
    }

    /** Caller holds the prometheus lock. */
    private void register(String group, String name) {
        if ((group.equals("block") || group.equals("net")) || !registered.add(group + "." + name)) {
            return; // the sums over devices are the scraper's to make
        }
        String family = group;
        String label = null;
        String device = null;
        if (group.startsWith("block_")) {
            family = "block";
            label = "drive";
            device = group.substring("block_".length());
        } else if (group.startsWith("net_")) {
            family = "net";
            label = "iface";
            device = group.substring("net_".length());
        }
        FunctionCounter.Builder<MetricsRegistry> builder = FunctionCounter.builder("panamax." + family + "." + name, this,
                r -> r.scraped.getOrDefault(group, Map.of()).getOrDefault(name, 0L));
        if (label != null) {
            builder.tag(label, device);
        }
        builder.register(prometheus);
    }

    private void registerLatency(String name) {
        if (registered.add("latencies_us." + name)) {
            Gauge.builder("panamax.latencies_us." + name, latencies.get(name), AtomicLong::get).register(prometheus);
        }
    }

    /** Writes a last line, if a destination is configured, then closes it. Idempotent. */
    @Override
    public void close() {
        CompletableFuture<Boolean> last = flush();
        synchronized (flushLock) {
            if (destination != null) {
                timer.shutdownNow();
                writer.shutdown();
                try {
                    if (!writer.awaitTermination(1, TimeUnit.SECONDS)) { // a pipe nobody reads: the line is given up
                        last.cancel(false);
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                try {
                    destination.close(); // also wakes a writer blocked on a full pipe
                } catch (IOException e) {
                    // nothing more to do for a metrics file that cannot be closed
                }
                writer.shutdownNow();
                destination = null;
            }
        }
        synchronized (prometheus) {
            prometheus.close();
        }
    }
}
