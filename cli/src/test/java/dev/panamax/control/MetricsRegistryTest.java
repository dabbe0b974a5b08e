package dev.panamax.control;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.api.VmMetrics;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The registry on its own, with the VM's counts given by the test. */
class MetricsRegistryTest {
    @TempDir Path dir;
    private final MetricsRegistry registry = new MetricsRegistry();
    private final AtomicReference<VmMetrics> vm = new AtomicReference<>(counts(0));

    @AfterEach
    void close() {
        registry.close();
    }

    /** A VM with one drive, one network interface and vsock, each count {@code n} times its position. */
    private static VmMetrics counts(long n) {
        return new VmMetrics(new VmMetrics.Vcpus(10 * n, n, 2 * n, 3 * n, 4 * n, 0, 0, 0),
                Map.of("rootfs", new VmMetrics.Block(n, 4096 * n, 2 * n, 8192 * n, 3 * n, 0, 0, 5 * n)),
                Map.of("eth0", new VmMetrics.Net(n, 100 * n, 0, 0, 2 * n, 200 * n, 0, 7 * n)), 50 * n,
                new VmMetrics.Vsock(11 * n, 12 * n, 0, 0, 0));
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> parse(String line) {
        return (Map<String, Object>) Json.parse(line, "the metrics line");
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> group(Map<String, Object> line, String name) {
        return (Map<String, Object>) line.get(name);
    }

    @Test
    void aFlushLineHasFirecrackersGroupsAndEachCounterSinceTheLastFlush() {
        registry.attach(vm::get);
        registry.increment("put_api_requests", "actions_count");
        vm.set(counts(1));
        Map<String, Object> first = parse(registry.flushLine(1_700_000_000_000L));
        assertThat(first.keySet()).containsExactly("utc_timestamp_ms", "api_server", "logger", "put_api_requests", "vcpu", "block",
                "block_rootfs", "net", "net_eth0", "uart", "vsock", "latencies_us");
        assertThat(first.get("utc_timestamp_ms")).isEqualTo(1_700_000_000_000L);
        assertThat(first.get("put_api_requests")).isEqualTo(Map.of("actions_count", 1L));
        assertThat(group(first, "block_rootfs")).containsEntry("read_bytes", 4096L).containsEntry("write_count", 2L)
                .containsEntry("flush_count", 3L).containsEntry("rate_limiter_throttled_events", 5L);
        assertThat(first.get("block")).as("the sum over the drives").isEqualTo(first.get("block_rootfs"));
        assertThat(group(first, "vcpu")).containsEntry("exit_io_in", 1L).containsEntry("exit_io_out", 2L)
                .containsEntry("exit_mmio_read", 3L).containsEntry("exit_mmio_write", 4L).containsEntry("failures", 0L);
        assertThat(group(first, "net_eth0")).containsEntry("rx_bytes_count", 100L).containsEntry("tx_packets_count", 2L)
                .containsEntry("tx_rate_limiter_throttled", 7L);
        assertThat(first.get("uart")).isEqualTo(Map.of("write_count", 50L));

        vm.set(counts(3));
        registry.latency("pause_vm", 250);
        Map<String, Object> second = parse(registry.flushLine(1_700_000_060_000L));
        assertThat(second.get("put_api_requests")).as("nothing counted since").isEqualTo(Map.of("actions_count", 0L));
        assertThat(group(second, "block_rootfs")).as("3 - 1 times each").containsEntry("read_bytes", 8192L)
                .containsEntry("write_count", 4L);
        assertThat(group(second, "vsock")).containsEntry("rx_bytes_count", 22L).containsEntry("tx_bytes_count", 24L);
        assertThat(second.get("latencies_us")).as("a value, kept as it is").isEqualTo(Map.of("pause_vm", 250L));
        assertThat(parse(registry.flushLine(0)).get("latencies_us")).isEqualTo(Map.of("pause_vm", 250L));
    }

    @Test
    void thePrometheusTextHasEveryCounterWithItsDeviceInALabel() {
        registry.attach(vm::get);
        registry.increment("get_api_requests", "instance_info_count");
        vm.set(counts(2));
        registry.latency("resume_vm", 40);
        String text = registry.prometheus(MetricsRegistry.PROMETHEUS_TEXT);
        List<String> samples = text.lines().filter(l -> !l.startsWith("#")).toList();
        assertThat(samples).contains("panamax_block_read_bytes_total{drive=\"rootfs\"} 8192.0",
                "panamax_net_tx_bytes_count_total{iface=\"eth0\"} 400.0", "panamax_vcpu_exit_mmio_write_total 8.0",
                "panamax_get_api_requests_instance_info_count_total 1.0", "panamax_uart_write_count_total 100.0",
                "panamax_latencies_us_resume_vm 40.0");
        assertThat(samples).allMatch(l -> l.matches("[a-z_]+(\\{[a-z]+=\"[^\"]*\"\\})? [0-9.E]+"), "NAME{LABEL=\"VALUE\"} NUMBER");
        assertThat(samples).noneMatch(l -> l.startsWith("panamax_block_read_bytes_total ")).as("no unlabelled sum beside the drives");
        assertThat(text).contains("# TYPE panamax_block_read_bytes_total counter");

        vm.set(counts(3));
        assertThat(registry.prometheus(MetricsRegistry.PROMETHEUS_TEXT).lines())
                .as("a scrape reads the totals of its moment").contains("panamax_block_read_bytes_total{drive=\"rootfs\"} 12288.0");
        String open = registry.prometheus(MetricsRegistry.OPENMETRICS_TEXT);
        assertThat(open).contains("panamax_block_read_bytes_total{drive=\"rootfs\"} 12288.0").endsWith("# EOF\n");
    }

    @Test
    void flushesAppendOneLineEachToAFileConfiguredOnce() throws Exception {
        Path file = dir.resolve("metrics.json");
        Files.writeString(file, "earlier\n");
        registry.configure(file);
        registry.increment("put_api_requests", "metrics_count");
        assertThat(registry.flush().get()).isTrue();
        assertThat(registry.flush().get()).isTrue();
        List<String> lines = Files.readAllLines(file);
        assertThat(lines).hasSize(3).first().isEqualTo("earlier");
        assertThat(parse(lines.get(1)).get("put_api_requests")).isEqualTo(Map.of("metrics_count", 1L));
        assertThat(parse(lines.get(2)).get("put_api_requests")).isEqualTo(Map.of("metrics_count", 0L));
        assertThatThrownBy(() -> registry.configure(dir.resolve("other.json"))).isInstanceOf(IllegalStateException.class)
                .hasMessage("the metrics go to " + file + " already; Firecracker's metrics system is set up once");
        assertThatThrownBy(() -> new MetricsRegistry().configure(dir.resolve("no/such/dir/m.json"))).isInstanceOf(IOException.class);
        assertThatThrownBy(() -> new MetricsRegistry().configure(dir)).isInstanceOf(IOException.class)
                .hasMessage(dir + " is a directory; give a file or a named pipe");
    }

    @Test
    void aConfiguredFileGetsALineEveryPeriodWithoutBeingAsked() throws Exception {
        Path file = dir.resolve("periodic.json");
        try (MetricsRegistry periodic = new MetricsRegistry(Duration.ofMillis(100))) {
            periodic.configure(file);
            periodic.increment("put_api_requests", "metrics_count");
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos(); // a guard against a hang, not a speed
            while ((!Files.exists(file) || Files.readAllLines(file).size() < 3) && System.nanoTime() < deadline) {
                Thread.sleep(50);
            }
            List<String> lines = Files.readAllLines(file);
            assertThat(lines).as("lines flushed by the timer alone").hasSizeGreaterThanOrEqualTo(3);
            assertThat(parse(lines.getFirst()).get("put_api_requests")).isEqualTo(Map.of("metrics_count", 1L));
            assertThat(parse(lines.get(1)).get("put_api_requests")).isEqualTo(Map.of("metrics_count", 0L));
        }
    }

    @Test
    void aNamedPipeNobodyReadsNeverHoldsUpAFlush() throws Exception {
        Path fifo = dir.resolve("metrics.fifo");
        assertThat(new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor()).isZero();
        registry.attach(vm::get);
        registry.configure(fifo); // returns without a reader
        List<CompletableFuture<Boolean>> flushes = new ArrayList<>();
        for (int i = 0; i < 300; i++) { // some 300 KB of lines, beyond what a pipe holds (64 KiB)
            flushes.add(registry.flush());
        }
        assertThat(registry.counters().get("logger").get("missed_metrics_count")).as("lines the blocked writer could not take")
                .isPositive();
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(Files.newInputStream(fifo), StandardCharsets.UTF_8))) {
            assertThat(parse(reader.readLine())).containsKey("utc_timestamp_ms");
        }
        registry.close(); // wakes the writer, whatever it still waits for
        assertThat(flushes).allMatch(CompletableFuture::isDone);
    }
}
