package dev.panamax.control;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.api.RateLimiter;
import dev.panamax.api.TokenBucket;
import dev.panamax.api.VirtualMachine;
import dev.panamax.rig.UsesKvm;
import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The REST API over a real Unix socket, with the JDK's own client. Guests here are stand-in
 * kernels that run where KVM only emulates; booting Linux through the API is integration-tests'.
 */
@UsesKvm
class ApiServerTest {
    @TempDir Path dir;
    private Path socket;
    private Path kernel;
    private ControlPlane plane;
    private ApiServer server;
    private ApiClient client;

    @BeforeEach
    void serve() throws IOException {
        socket = dir.resolve("api.sock");
        kernel = TestKernels.spinning(dir);
        plane = new ControlPlane(config -> config.toBuilder().build(), "1.2.3");
        server = ApiServer.start(socket, plane);
        client = new ApiClient(socket);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    private ApiClient.Response send(String method, String path, String body) throws IOException {
        return client.send(method, path, body);
    }

    /** Sends a request that must fail, and checks its status and fault message. */
    private void assertFault(int status, String message, String method, String path, String body) throws IOException {
        ApiClient.Response r = send(method, path, body);
        assertThat(r.status()).as(r.body()).isEqualTo(status);
        assertThat(r.headers().get("content-type")).isEqualTo("application/json");
        assertThat(r.json()).isEqualTo(Map.of("fault_message", message));
    }

    private void assertNoContent(String method, String path, String body) throws IOException {
        ApiClient.Response r = send(method, path, body);
        assertThat(r.status()).as(r.body()).isEqualTo(204);
        assertThat(r.body()).isEmpty();
    }

    private String state() throws IOException {
        return (String) ((Map<?, ?>) send("GET", "/", null).json()).get("state");
    }

    private String bootSource() {
        return "{\"kernel_image_path\": \"" + kernel + "\", \"boot_args\": \"quiet\"}";
    }

    @Test
    void theSocketIsTheOwnersOnlyAndGoesAwayWithTheServer() throws IOException {
        assertThat(Files.getPosixFilePermissions(socket)).isEqualTo(PosixFilePermissions.fromString("rw-------"));
        assertThat(dir.toFile().list()).as("no leftovers of setting the socket up")
                .containsExactlyInAnyOrder("api.sock", kernel.getFileName().toString());
        assertThatThrownBy(() -> ApiServer.start(socket, plane)).isInstanceOf(IOException.class)
                .hasMessage(socket + " exists already; remove it if no VMM listens there, or choose another path");
        assertThatThrownBy(() -> ApiServer.start(dir.resolve("no/such/dir/api.sock"), plane)).isInstanceOf(IOException.class)
                .hasMessage("the directory " + dir.resolve("no/such/dir") + " does not exist");
        server.close();
        assertThat(socket).doesNotExist();
        server.close(); // idempotent
    }

    @Test
    void instanceInformationAndVersion() throws IOException {
        ApiClient.Response info = send("GET", "/", null);
        assertThat(info.status()).isEqualTo(200);
        assertThat(info.json()).isEqualTo(Map.of("id", "anonymous-instance", "state", "Not started", "vmm_version", "1.2.3",
                "app_name", "Panamax"));
        assertThat(send("GET", "/version", null).json()).isEqualTo(Map.of("firecracker_version", "1.2.3"));
        assertThat(send("GET", "/metrics", null).json()).as("before the VM runs, only what the API itself measured")
                .isEqualTo(Map.of("state", "Not started", "api_requests", 3L));
    }

    @Test
    void thePreBootResourcesMakeUpTheVmConfig() throws IOException {
        Path disk = Files.write(dir.resolve("rootfs.ext4"), new byte[4096]);
        assertNoContent("PUT", "/boot-source", bootSource());
        assertNoContent("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 128, \"smt\": false}");
        assertNoContent("PUT", "/drives/rootfs",
                "{\"drive_id\": \"rootfs\", \"path_on_host\": \"" + disk + "\", \"is_root_device\": true, \"is_read_only\": true}");
        assertNoContent("PUT", "/network-interfaces/eth0",
                "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:AC:10:00:02\"}");
        // A PUT of an existing id replaces it, as in Firecracker.
        assertNoContent("PUT", "/drives/rootfs",
                "{\"drive_id\": \"rootfs\", \"path_on_host\": \"" + disk + "\", \"is_root_device\": true, \"is_read_only\": false}");

        Path uds = dir.resolve("v.sock");
        assertNoContent("PUT", "/vsock", "{\"vsock_id\": \"vsock0\", \"guest_cid\": 3, \"uds_path\": \"" + dir.resolve("old.sock") + "\"}");
        assertNoContent("PUT", "/vsock", "{\"guest_cid\": 42, \"uds_path\": \"" + uds + "\"}"); // replaces it, as in Firecracker
        Path data = Files.createDirectory(dir.resolve("data"));
        assertNoContent("PUT", "/shared-folders", "[{\"path\": \"" + dir + "\", \"tag\": \"old\"}]");
        assertNoContent("PUT", "/shared-folders", "[{\"path\": \"" + data + "\", \"tag\": \"data\", \"read_only\": true},"
                + " {\"path\": \"" + dir + "\", \"tag\": \"live\", \"cache\": \"none\"}]"); // the whole list

        ApiClient.Response config = send("GET", "/vm/config", null);

        assertThat(config.status()).isEqualTo(200);
        assertThat(config.body()).isEqualTo("{\"boot-source\":{\"kernel_image_path\":\"" + kernel + "\",\"boot_args\":\"quiet\"},"
                + "\"machine-config\":{\"vcpu_count\":2,\"mem_size_mib\":128,\"smt\":false,\"track_dirty_pages\":false},"
                + "\"drives\":[{\"drive_id\":\"rootfs\",\"path_on_host\":\"" + disk + "\",\"is_root_device\":true,\"is_read_only\":false}],"
                + "\"network-interfaces\":[{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap0\",\"guest_mac\":\"06:00:ac:10:00:02\"}],"
                + "\"vsock\":{\"guest_cid\":42,\"uds_path\":\"" + uds + "\"},"
                + "\"shared-folders\":[{\"path\":\"" + data + "\",\"tag\":\"data\",\"read_only\":true,\"cache\":\"auto\"},"
                + "{\"path\":\"" + dir + "\",\"tag\":\"live\",\"read_only\":false,\"cache\":\"none\"}]}");
        assertThat(VmConfig.parse(config.body(), "GET /vm/config")).as("a config file says the same")
                .isEqualTo(VmConfig.parse(config.body(), "again"));
        assertThat(send("GET", "/machine-config", null).json())
                .isEqualTo(Map.of("vcpu_count", 2L, "mem_size_mib", 128L, "smt", false, "track_dirty_pages", false));
    }

    @Test
    void theEntropyDeviceTakesFirecrackersPayloadBeforeBootOnly() throws Exception {
        // Firecracker's docs/entropy.md: a bandwidth limit of 10 KB/s.
        assertNoContent("PUT", "/entropy", "{\"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"one_time_burst\": 0, \"refill_time\": 100}}}");
        assertThat(send("GET", "/vm/config", null).body()).contains("\"entropy\":{\"rate_limiter\":{\"bandwidth\":"
                + "{\"size\":1000,\"one_time_burst\":0,\"refill_time\":100}}}");
        assertNoContent("PUT", "/entropy", "{}"); // replaces it: no limit, as in Firecracker
        assertThat(send("GET", "/vm/config", null).body()).endsWith("\"entropy\":{}}");

        assertFault(400, "entropy.rate_limiter.bandwidth.size: -1 is not an integer from 0 to 9223372036854775807", "PUT", "/entropy",
                "{\"rate_limiter\": {\"bandwidth\": {\"size\": -1, \"refill_time\": 100}}}");
        assertFault(400, "entropy.rate_limiter.ops.refill_time: is required", "PUT", "/entropy",
                "{\"rate_limiter\": {\"ops\": {\"size\": 10}}}");
        assertFault(400, "entropy.rate_limter: unknown key; the keys here are rate_limiter", "PUT", "/entropy",
                "{\"rate_limter\": {}}");
        assertFault(400, "entropy.rate_limiter.bandwidth: expected a JSON object, not the string \"fast\"", "PUT", "/entropy",
                "{\"rate_limiter\": {\"bandwidth\": \"fast\"}}");
        assertFault(400, "entropy: expected a JSON object, not an array", "PUT", "/entropy", "[]");

        assertNoContent("PUT", "/boot-source", bootSource());
        assertNoContent("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
        assertNoContent("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        try (VirtualMachine vm = plane.awaitStarted()) {
            assertFault(400, "entropy: can only be set before InstanceStart, and the VM has started", "PUT", "/entropy", "{}");
            assertThat(send("GET", "/vm/config", null).body()).endsWith("\"entropy\":{}}");
            vm.kill();
        }
    }

    @Test
    void badRequestsAreRefusedWithTheirStatusAndAMessage() throws IOException {
        assertFault(404, "there is no resource /nope; the API has /, /version, /boot-source, /machine-config, /drives/{id},"
                + " /network-interfaces/{id}, /vsock, /entropy, /shared-folders, /logger, /balloon, /balloon/statistics, /actions, /vm, /vm/config, /snapshot/create, /snapshot/load, /migration, /migration/send, /migration/cancel, /migration/receive, /metrics", "GET", "/nope", null);
        assertFault(404, "there is no resource /drives/; the API has /, /version, /boot-source, /machine-config, /drives/{id},"
                + " /network-interfaces/{id}, /vsock, /entropy, /shared-folders, /logger, /balloon, /balloon/statistics, /actions, /vm, /vm/config, /snapshot/create, /snapshot/load, /migration, /migration/send, /migration/cancel, /migration/receive, /metrics", "PUT", "/drives/", "{}");
        ApiClient.Response wrongMethod = send("GET", "/boot-source", null);
        assertThat(wrongMethod.status()).isEqualTo(405);
        assertThat(wrongMethod.headers().get("allow")).isEqualTo("PUT");
        assertThat(wrongMethod.faultMessage()).isEqualTo("/boot-source accepts PUT, not GET");
        assertFault(405, "/machine-config accepts GET, PUT, not DELETE", "DELETE", "/machine-config", null);

        assertFault(400, "the request body: malformed JSON at line 1, column 24: expected ',' or '}' after the value of"
                + " \"kernel_image_path\", found the end of the text", "PUT", "/boot-source", "{\"kernel_image_path\": 1");
        assertFault(400, "the request body: malformed JSON at line 1, column 1: expected a JSON value, found the end of the text",
                "PUT", "/boot-source", "");
        assertFault(400, "boot-source.kernel_image_path: expected a string, not the number 1",
                "PUT", "/boot-source", "{\"kernel_image_path\": 1}");
        assertFault(400, "boot-source.kernel_image_path: " + dir.resolve("missing") + " does not exist",
                "PUT", "/boot-source", "{\"kernel_image_path\": \"" + dir.resolve("missing") + "\"}");
        assertFault(400, "machine-config.vcpu_count: expected an integer, not the string \"two\"",
                "PUT", "/machine-config", "{\"vcpu_count\": \"two\", \"mem_size_mib\": 128}");
        assertFault(400, "machine-config.mem_size_mib: is required", "PUT", "/machine-config", "{\"vcpu_count\": 1}");
        assertFault(400, "machine-config.cpu_count: unknown key; the keys here are cpu_affinity, cpu_template, huge_pages, mem_size_mib, seccomp, smt,"
                + " track_dirty_pages, vcpu_count", "PUT", "/machine-config", "{\"cpu_count\": 1, \"mem_size_mib\": 128}");
        assertFault(400, "drives/a-b: 'a-b' is not a valid id: use 1 to 64 letters, digits or underscores", "PUT", "/drives/a-b", "{}");
        Path disk = Files.write(dir.resolve("disk.img"), new byte[512]);
        assertFault(400, "drives/data.drive_id: 'other' differs from the id in the path, 'data'", "PUT", "/drives/data",
                "{\"drive_id\": \"other\", \"path_on_host\": \"" + disk + "\", \"is_root_device\": false}");
        assertNoContent("PUT", "/drives/root1", "{\"drive_id\": \"root1\", \"path_on_host\": \"" + disk
                + "\", \"is_root_device\": true, \"is_read_only\": true}");
        assertFault(400, "drives/root2: drive 'root1' is the root device already; only one drive can be the root device",
                "PUT", "/drives/root2", "{\"drive_id\": \"root2\", \"path_on_host\": \"" + disk
                        + "\", \"is_root_device\": true, \"is_read_only\": true}");
        Path vhdx = Files.writeString(dir.resolve("disk.qed"), "QED\0");
        assertFault(400, "drives/data.path_on_host: " + vhdx + " is a QED image (QEMU enhanced disk), which Panamax cannot read yet;"
                + " convert it with 'qemu-img convert -f qed -O qcow2 " + vhdx + " " + dir.resolve("disk.qcow2") + "' first", "PUT", "/drives/data",
                "{\"drive_id\": \"data\", \"path_on_host\": \"" + vhdx + "\", \"is_root_device\": false}");
        assertNoContent("PUT", "/drives/data", "{\"drive_id\": \"data\", \"path_on_host\": \"" + vhdx
                + "\", \"is_root_device\": false, \"format\": \"raw\"}");
        assertFault(400, "drives/other.path_on_host: " + vhdx + " is a QED image (QEMU enhanced disk), which Panamax cannot read yet;"
                + " convert it with 'qemu-img convert -f qed -O qcow2 " + vhdx + " " + dir.resolve("disk.qcow2") + "' first", "PUT", "/drives/other",
                "{\"drive_id\": \"other\", \"path_on_host\": \"" + vhdx + "\", \"is_root_device\": false, \"is_read_only\": true}");
        assertFault(400, "network-interfaces/eth0.guest_mac: 'nope' is not a MAC address: write six hex pairs, like 06:00:ac:10:00:02",
                "PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"nope\"}");
        assertFault(400, "vsock.guest_cid: 1 is not a guest CID: use 3 to 4294967294 (0 to 2 are the hypervisor's, the local and the"
                + " host's, 4294967295 means any)", "PUT", "/vsock", "{\"guest_cid\": 1, \"uds_path\": \"" + dir.resolve("v.sock") + "\"}");
        assertFault(400, "vsock.uds_path: is required", "PUT", "/vsock", "{\"guest_cid\": 3}");
        assertFault(400, "shared-folders[0].tag: the share tag '" + "t".repeat(37) + "' is 37 bytes of UTF-8; a tag has at most 36",
                "PUT", "/shared-folders", "[{\"path\": \"" + dir + "\", \"tag\": \"" + "t".repeat(37) + "\"}]");
        assertFault(400, "shared-folders[1]: another shared folder has the tag 'a' already; tags must be unique", "PUT", "/shared-folders",
                "[{\"path\": \"" + dir + "\", \"tag\": \"a\"}, {\"path\": \"" + dir + "\", \"tag\": \"a\"}]");
        assertFault(400, "shared-folders[0].cache: 'loose' is not a cache mode: use auto, none or always", "PUT", "/shared-folders",
                "[{\"path\": \"" + dir + "\", \"tag\": \"a\", \"cache\": \"loose\"}]");
        assertFault(400, "shared-folders: expected an array of shared folders, not an object", "PUT", "/shared-folders",
                "{\"path\": \"" + dir + "\", \"tag\": \"a\"}");
        assertFault(400, "boot-source: is required before InstanceStart; PUT /boot-source first",
                "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        assertFault(400, "actions.action_type: \"Reboot\" is not an action; the actions are InstanceStart, SendCtrlAltDel"
                + " and FlushMetrics", "PUT", "/actions", "{\"action_type\": \"Reboot\"}");
        assertFault(400, "SendCtrlAltDel: the VM has not started; send the InstanceStart action first",
                "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
        assertFault(400, "vm: the VM has not started; send the InstanceStart action first", "PATCH", "/vm", "{\"state\": \"Paused\"}");
        assertFault(400, "vm.state: \"Sleeping\" is not a state to ask for; use Paused or Resumed",
                "PATCH", "/vm", "{\"state\": \"Sleeping\"}");

        byte[] latin1 = "PUT /boot-source HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n\"\u00e9\""
                .getBytes(StandardCharsets.ISO_8859_1);
        assertThat(client.exchange(latin1).faultMessage()).isEqualTo("the request body: is not UTF-8 text");
        assertThat(state()).as("nothing above changed the VM").isEqualTo("Not started");
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> metricsLine(String json) {
        return (Map<String, Object>) Json.parse(json, "the metrics file");
    }

    @Test
    void putMetricsTakesFirecrackersPayloadAndFlushMetricsWritesALine() throws IOException {
        assertNoContent("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}"); // no destination yet: nothing to write, as in Firecracker
        Path file = dir.resolve("metrics.json");
        assertNoContent("PUT", "/metrics", "{\"metrics_path\": \"" + file + "\"}");
        send("GET", "/", null);
        assertNoContent("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
        List<String> lines = Files.readAllLines(file);
        assertThat(lines).hasSize(1);
        Map<String, Object> line = metricsLine(lines.getFirst());
        assertThat(line.get("utc_timestamp_ms")).isInstanceOf(Long.class);
        assertThat(metricsLine(Json.write(line.get("put_api_requests")))).as("every counter, whether it moved or not").hasSize(16)
                .containsEntry("actions_count", 2L).containsEntry("metrics_count", 1L).containsEntry("actions_fails", 0L)
                .containsEntry("drive_count", 0L);
        assertThat(line.get("get_api_requests")).isEqualTo(Map.of("instance_info_count", 1L, "machine_cfg_count", 0L,
                "vmm_version_count", 0L));
        assertThat(line.keySet()).as("no VM yet: only the API's groups").containsExactly("utc_timestamp_ms", "api_server",
                "get_api_requests", "logger", "patch_api_requests", "put_api_requests", "latencies_us");
        assertFault(400, "metrics.metrics_path: the metrics go to " + file + " already; Firecracker's metrics system is set up once",
                "PUT", "/metrics", "{\"metrics_path\": \"" + dir.resolve("again.json") + "\"}");
        assertNoContent("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
        Map<String, Object> next = metricsLine(Files.readAllLines(file).get(1));
        assertThat(metricsLine(Json.write(next.get("put_api_requests")))).as("each counter since the last flush")
                .containsEntry("actions_count", 1L).containsEntry("metrics_count", 1L).containsEntry("metrics_fails", 1L);
    }

    @Test
    void badMetricsPayloadsAreRefused() throws IOException {
        assertFault(400, "metrics.metrics_path: is required", "PUT", "/metrics", "{}");
        assertFault(400, "metrics.metrics_path: expected a string, not the number 3", "PUT", "/metrics", "{\"metrics_path\": 3}");
        assertFault(400, "metrics.metrics_pth: unknown key; the keys here are metrics_path", "PUT", "/metrics", "{\"metrics_pth\": \"m.json\"}");
        assertFault(400, "metrics.metrics_path: is empty; give the path of a file or a named pipe", "PUT", "/metrics",
                "{\"metrics_path\": \"\"}");
        Path missing = dir.resolve("no/such/dir/m.json");
        ApiClient.Response r = send("PUT", "/metrics", "{\"metrics_path\": \"" + missing + "\"}");
        assertThat(r.status()).isEqualTo(400);
        assertThat(r.faultMessage()).startsWith("metrics.metrics_path: cannot open " + missing + " for the metrics: ")
                .endsWith("; give a writable file or a named pipe (mkfifo)");
        assertFault(405, "/metrics accepts GET, PUT, not PATCH", "PATCH", "/metrics", "{}");
    }

    @Test
    void getMetricsAnswersInPrometheusTextWhenAskedAndJsonOtherwise() throws IOException {
        send("GET", "/version", null);
        ApiClient.Response text = send("GET", "/metrics?format=prometheus", null);
        assertThat(text.status()).isEqualTo(200);
        assertThat(text.headers().get("content-type")).isEqualTo(MetricsRegistry.PROMETHEUS_TEXT);
        assertThat(text.body().lines()).contains("panamax_get_api_requests_vmm_version_count_total 1.0");
        String scrape = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,"
                + "text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nConnection: close\r\n\r\n"; // as Prometheus asks
        ApiClient.Response open = client.exchange(scrape.getBytes(StandardCharsets.US_ASCII));
        assertThat(open.headers().get("content-type")).isEqualTo(MetricsRegistry.OPENMETRICS_TEXT);
        assertThat(open.body()).contains("panamax_get_api_requests_vmm_version_count_total 1.0").endsWith("# EOF\n");
        String plain = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\nConnection: close\r\n\r\n";
        assertThat(client.exchange(plain.getBytes(StandardCharsets.US_ASCII)).headers().get("content-type"))
                .isEqualTo(MetricsRegistry.PROMETHEUS_TEXT);
        assertThat(send("GET", "/metrics", null).json()).as("JSON by default").isInstanceOf(Map.class);
        assertThat(send("GET", "/metrics?format=json", null).json()).isInstanceOf(Map.class);
        assertFault(400, "metrics: format \"xml\" is not one Panamax writes; use json (the default), prometheus or openmetrics",
                "GET", "/metrics?format=xml", null);
    }

    @Test
    void eachKindOfFaultHasItsStatusAndFirecrackersBody() throws Exception {
        String big = "{\"boot_args\": \"" + "x".repeat(ApiServer.MAX_BODY_BYTES) + "\"}";
        Map<Class<? extends ApiFault>, Check> checks = new LinkedHashMap<>();
        checks.put(ApiFault.BadRequest.class, () -> assertFault(400,
                "machine-config.vcpu_count: 0 vCPUs is out of range: a guest has 1 to 254",
                "PUT", "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 128}"));
        checks.put(ApiFault.WrongState.class, () -> assertFault(400,
                "vm: the VM has not started; send the InstanceStart action first", "PATCH", "/vm", "{\"state\": \"Resumed\"}"));
        checks.put(ApiFault.NotFound.class, () -> assertFault(404, "there is no resource /vm/state; the API has /, /version,"
                + " /boot-source, /machine-config, /drives/{id}, /network-interfaces/{id}, /vsock, /entropy, /shared-folders, /logger, /balloon, /balloon/statistics, /actions, /vm, /vm/config, /snapshot/create, /snapshot/load, /migration, /migration/send, /migration/cancel, /migration/receive, /metrics",
                "GET", "/vm/state", null));
        checks.put(ApiFault.MethodNotAllowed.class, () -> {
            assertFault(405, "/machine-config accepts GET, PUT, not DELETE", "DELETE", "/machine-config", null);
            assertThat(send("DELETE", "/machine-config", null).headers()).containsEntry("allow", "GET, PUT");
        });
        checks.put(ApiFault.PayloadTooLarge.class, () -> {
            assertFault(413, "the request body is larger than 51200 bytes", "PUT", "/boot-source", big);
            assertThat(send("PUT", "/boot-source", big).headers()).containsEntry("connection", "close");
        });
        checks.put(ApiFault.Internal.class, () -> {
            try (var _ = quietLog(); ApiServer buggy = ApiServer.start(dir.resolve("buggy.sock"), new ControlPlane(config -> {
                throw new IllegalStateException("a bug");
            }, "1.2.3"))) {
                new ApiClient(buggy.socket()).send("PUT", "/boot-source", bootSource());
                ApiClient.Response r = new ApiClient(buggy.socket()).send("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
                assertThat(r.status()).isEqualTo(500);
                assertThat(r.headers().get("content-type")).isEqualTo("application/json");
                assertThat(r.json()).isEqualTo(Map.of("fault_message", ApiFault.Internal.MESSAGE));
            }
        });
        assertThat(Set.<Class<?>>copyOf(checks.keySet())).as("a check for every kind of fault")
                .isEqualTo(Set.of(ApiFault.class.getPermittedSubclasses()));
        for (Check check : checks.values()) {
            check.run();
        }
        assertThat(ApiFault.Internal.MESSAGE).as("generic: nothing about the bug").doesNotContain("Exception", "a bug");
        assertThat(state()).as("no fault changed the VM").isEqualTo("Not started");
    }

    @Test
    void aBugIsAnsweredWith500AndLoggedAndTheServerGoesOn() throws Exception {
        server.close();
        Files.deleteIfExists(socket);
        // The failing collaborator: a VM factory that throws what deeper code throws for a bug, then works.
        Deque<RuntimeException> bugs = new ArrayDeque<>(List.of(new IllegalStateException("the device manager lost a device"),
                new UnsupportedOperationException("not written yet")));
        plane = new ControlPlane(config -> {
            RuntimeException bug = bugs.poll();
            if (bug != null) {
                throw bug;
            }
            return config.toBuilder().build();
        }, "1.2.3");
        server = ApiServer.start(socket, plane);
        assertNoContent("PUT", "/boot-source", bootSource());

        try (LogCapture log = quietLog()) {
            for (String kind : List.of("IllegalStateException", "UnsupportedOperationException")) {
                ApiClient.Response r = send("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
                assertThat(r.status()).as(r.body()).isEqualTo(500);
                assertThat(r.json()).as("no trace, no exception for the client").isEqualTo(Map.of("fault_message", ApiFault.Internal.MESSAGE));
                assertThat(state()).as("the failed start left the VM to be started").isEqualTo("Not started");
                LogRecord logged = log.records().getLast();
                assertThat(logged.getLevel()).isEqualTo(Level.SEVERE);
                assertThat(logged.getMessage()).isEqualTo("internal error answering PUT \"/actions\"");
                assertThat(logged.getThrown().getClass().getSimpleName()).isEqualTo(kind);
            }
            assertThat(log.records()).hasSize(2);

            // On one connection: the request after a failing one is answered too.
            bugs.add(new IllegalStateException("again"));
            ApiClient.Response pipelined = client.exchange(("PUT /actions HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n"
                    + "{\"action_type\": \"InstanceStart\"}"
                    + "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            assertThat(pipelined.status()).isEqualTo(500);
            assertThat(pipelined.body()).endsWith("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 31\r\n"
                    + "connection: close\r\n\r\n{\"firecracker_version\":\"1.2.3\"}");
            assertThat(log.records()).hasSize(3);
            assertThat(plane.metrics().counters().get("api_server")).as("Firecracker's count of the requests answered 500")
                    .containsEntry("sync_response_fails", 3L);
        }

        assertNoContent("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        try (VirtualMachine _ = plane.awaitStarted()) {
            assertThat(state()).isEqualTo("Running");
        }
    }

    /** What ApiServer logs while it is open; the log's own handlers are silenced meanwhile (the failures are on purpose). */
    private record LogCapture(Logger logger, Handler handler, List<LogRecord> records) implements AutoCloseable {
        @Override
        public void close() {
            logger.removeHandler(handler);
            logger.setUseParentHandlers(true);
        }
    }

    private static LogCapture quietLog() {
        Logger logger = Logger.getLogger(ApiServer.class.getName());
        List<LogRecord> records = new CopyOnWriteArrayList<>();
        Handler handler = new Handler() {
            @Override
            public void publish(LogRecord r) {
                records.add(r);
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
        logger.addHandler(handler);
        logger.setUseParentHandlers(false);
        return new LogCapture(logger, handler, records);
    }

    private interface Check {
        void run() throws Exception;
    }

    @Test
    void oversizedAndMalformedRequestsAreRefused() throws IOException {
        String big = "{\"boot_args\": \"" + "x".repeat(ApiServer.MAX_BODY_BYTES) + "\"}";
        ApiClient.Response tooLarge = send("PUT", "/boot-source", big);
        assertThat(tooLarge.status()).isEqualTo(413);
        assertThat(tooLarge.faultMessage()).isEqualTo("the request body is larger than 51200 bytes");

        ApiClient.Response longLine = send("GET", "/" + "a".repeat(10_000), null);
        assertThat(longLine.status()).isEqualTo(413);
        assertThat(longLine.faultMessage()).startsWith("malformed HTTP request: ");

        ApiClient.Response garbage = client.exchange("\u0001\u0002 hello\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
        assertThat(garbage.status()).isEqualTo(400);
        assertThat(garbage.faultMessage()).startsWith("malformed HTTP request: ");
        assertThat(send("GET", "/", null).status()).as("the server goes on").isEqualTo(200);
    }

    @Test
    void oneConnectionCarriesSeveralRequestsInOrder() throws IOException {
        String requests = "GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        ApiClient.Response first = client.exchange(requests.getBytes(StandardCharsets.US_ASCII));
        // The reader gets all three answers back to back; the first is parsed, the rest stay in its body.
        assertThat(first.status()).isEqualTo(200);
        assertThat(first.body()).startsWith("{\"firecracker_version\":\"1.2.3\"}HTTP/1.1 404 Not Found\r\n")
                .contains("there is no resource /nope").contains("HTTP/1.1 200 OK").endsWith("\"app_name\":\"Panamax\"}");
    }

    @Test
    void aPausedVmIsSnapshottedAndAnotherServerLoadsIt() throws Exception {
        String create = "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"" + dir.resolve("vm.state") + "\", \"mem_file_path\": \""
                + dir.resolve("vm.mem") + "\"}";
        assertFault(400, "snapshot/create: a snapshot is taken of a paused VM; PATCH /vm {\"state\": \"Paused\"} first",
                "PUT", "/snapshot/create", create);
        assertNoContent("PUT", "/boot-source", bootSource());
        assertNoContent("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"track_dirty_pages\": true}");
        assertNoContent("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        Map<?, ?> bootConfig;
        try (VirtualMachine vm = plane.awaitStarted()) {
            bootConfig = (Map<?, ?>) send("GET", "/vm/config", null).json();
            assertFault(400, "snapshot/create: a snapshot is taken of a paused VM; PATCH /vm {\"state\": \"Paused\"} first",
                    "PUT", "/snapshot/create", create);
            assertFault(400, "snapshot/create.snapshot_type: \"Half\" is not a snapshot type; use Full or Diff",
                    "PUT", "/snapshot/create", create.replace("Full", "Half"));
            assertFault(400, "snapshot/create.snapshot_path: \"a\\u0000b\" is not a file path: Nul character not allowed",
                    "PUT", "/snapshot/create", "{\"snapshot_path\": \"a\\u0000b\", \"mem_file_path\": \"m\"}");
            assertNoContent("PATCH", "/vm", "{\"state\": \"Paused\"}");
            assertNoContent("PUT", "/snapshot/create", create);
            assertNoContent("PUT", "/snapshot/create", create.replace("Full", "Diff").replace("vm.state", "diff.state")
                    .replace("vm.mem", "diff.mem"));
            assertFault(400, "snapshot/load: a snapshot is loaded into a VMM with no VM yet, and this one has one",
                    "PUT", "/snapshot/load", load("vm.state", true));
            vm.kill();
        }
        Files.write(dir.resolve("bad.state"), Arrays.copyOf(Files.readAllBytes(dir.resolve("vm.state")), 100));
        try (ControlPlane secondPlane = new ControlPlane(config -> config.toBuilder().build(), "1.2.3");
                ApiServer second = ApiServer.start(dir.resolve("second.sock"), secondPlane)) {
            ApiClient other = new ApiClient(second.socket());
            ApiClient.Response bad = other.send("PUT", "/snapshot/load", load("bad.state", false));
            assertThat(bad.status()).isEqualTo(400);
            assertThat(bad.faultMessage()).contains("bad.state is truncated");
            ApiClient.Response missing = other.send("PUT", "/snapshot/load", load("none.state", false));
            assertThat(missing.status()).isEqualTo(400);
            assertThat(missing.faultMessage()).contains("none.state");
            ApiClient.Response loaded = other.send("PUT", "/snapshot/load", load("vm.state", false));
            assertThat(loaded.status()).as(loaded.body()).isEqualTo(204);
            // The VM is its owner's to close, not the server's: left running, its vCPUs spun on under every later test.
            try (VirtualMachine _ = secondPlane.awaitStarted()) {
                assertThat(((Map<?, ?>) other.send("GET", "/", null).json()).get("state")).isEqualTo("Paused");
                Map<?, ?> loadedConfig = (Map<?, ?>) other.send("GET", "/vm/config", null).json();
                assertThat(loadedConfig.get("boot-source")).as("the snapshot's kernel and arguments").isEqualTo(bootConfig.get("boot-source"));
                assertThat(loadedConfig.get("machine-config")).as("the snapshot's machine, tracking as the load asked (not)")
                        .isEqualTo(Map.of("vcpu_count", 2L, "mem_size_mib", 64L, "smt", false, "track_dirty_pages", false));
                assertThat(other.send("GET", "/machine-config", null).json()).isEqualTo(loadedConfig.get("machine-config"));
                assertThat(other.send("PATCH", "/vm", "{\"state\": \"Resumed\"}").status()).isEqualTo(204);
                assertThat(((Map<?, ?>) other.send("GET", "/", null).json()).get("state")).isEqualTo("Running");
                assertThat(other.send("PUT", "/snapshot/load", load("vm.state", false)).faultMessage())
                        .isEqualTo("snapshot/load: a snapshot is loaded into a VMM with no VM yet, and this one has one");
            }
        }
    }

    private String load(String stateFile, boolean resume) {
        return "{\"snapshot_path\": \"" + dir.resolve(stateFile) + "\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \""
                + dir.resolve("vm.mem") + "\"}, \"resume_vm\": " + resume + "}";
    }

    @Test
    void instanceStartRunsTheVmAndFreezesItsResources() throws Exception {
        assertNoContent("PUT", "/boot-source", bootSource());
        assertNoContent("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");

        assertNoContent("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");

        try (VirtualMachine vm = plane.awaitStarted()) {
            assertThat(state()).isEqualTo("Running");
            assertFault(400, "InstanceStart: the VM is started already", "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
            assertFault(400, "machine-config: can only be set before InstanceStart, and the VM has started",
                    "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}");
            assertFault(400, "drives/data: can only be set before InstanceStart, and the VM has started",
                    "PUT", "/drives/data", "{}");
            assertNoContent("PATCH", "/vm", "{\"state\": \"Paused\"}");
            assertThat(state()).isEqualTo("Paused");
            assertNoContent("PATCH", "/vm", "{\"state\": \"Resumed\"}");
            assertThat(state()).isEqualTo("Running");
            assertNoContent("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");

            Map<?, ?> metrics = (Map<?, ?>) send("GET", "/metrics", null).json();
            assertThat(List.copyOf(metrics.keySet())).isEqualTo(List.of("state", "api_requests", "vm_uptime_ms", "vcpu_exits", "console_output_bytes"));
            assertThat((Long) metrics.get("vcpu_exits")).as("the pause pulled the vCPU out at least").isPositive();
            assertThat(metrics.get("console_output_bytes")).as("the stand-in kernel writes nothing to COM1").isEqualTo(0L);
            assertThat(send("GET", "/vm/config", null).body()).contains("\"mem_size_mib\":64");
            assertFault(400, "metrics: can only be set before InstanceStart, and the VM has started",
                    "PUT", "/metrics", "{\"metrics_path\": \"" + dir.resolve("m.json") + "\"}");
            assertThat(vm.metrics().vcpus().exits()).as("the Java API's snapshot").isPositive();
            assertThat(vm.metrics().drives()).isEmpty();
            List<String> text = send("GET", "/metrics?format=prometheus", null).body().lines().toList();
            assertThat(text).filteredOn(l -> l.startsWith("panamax_vcpu_exits_total ")).singleElement()
                    .as("the VM's counts, once it runs").isNotEqualTo("panamax_vcpu_exits_total 0.0");
            assertThat(text).contains("panamax_put_api_requests_metrics_fails_total 1.0", "panamax_uart_write_count_total 0.0")
                    .anyMatch(l -> l.startsWith("panamax_latencies_us_pause_vm ")).anyMatch(l -> l.startsWith("panamax_latencies_us_resume_vm "));

            vm.kill();
            assertThat(state()).isEqualTo("Exited");
            assertFault(400, "vm: the VM has exited", "PATCH", "/vm", "{\"state\": \"Paused\"}");
            assertFault(400, "vm: the VM has exited", "PATCH", "/vm", "{\"state\": \"Resumed\"}");
            assertFault(400, "SendCtrlAltDel: the VM has exited", "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
        }
        // Closed, as serve closes it when the guest ends, before the server.
        assertFault(400, "vm: the VM has exited", "PATCH", "/vm", "{\"state\": \"Paused\"}");
        assertFault(400, "SendCtrlAltDel: the VM has exited", "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
    }

    @Test
    void patchChangesTheConfiguredRateLimitersBeforeInstanceStart() throws Exception {
        Path disk = Files.write(dir.resolve("data.img"), new byte[4096]);
        assertNoContent("PUT", "/boot-source", bootSource());
        assertNoContent("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
        // Firecracker's patch-block example drive, and its patch-network-interface example interface.
        assertNoContent("PUT", "/drives/data", "{\"drive_id\": \"data\", \"path_on_host\": \"" + disk + "\", \"is_root_device\": false,"
                + " \"is_read_only\": false, \"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"one_time_burst\": 100,"
                + " \"refill_time\": 10}, \"ops\": {\"size\": 5, \"refill_time\": 100}}}");
        assertNoContent("PUT", "/network-interfaces/iface_1", "{\"iface_id\": \"iface_1\", \"host_dev_name\": \"fctap1\","
                + " \"guest_mac\": \"06:00:c0:a8:34:02\", \"rx_rate_limiter\": {\"bandwidth\": {\"size\": 1024, \"one_time_burst\":"
                + " 1048576, \"refill_time\": 1000}}, \"tx_rate_limiter\": {\"bandwidth\": {\"size\": 1024, \"one_time_burst\": 1048576,"
                + " \"refill_time\": 1000}}}");

        // A PATCH changes the configuration; a bucket left out stays.
        assertNoContent("PATCH", "/drives/data", "{\"drive_id\": \"data\", \"rate_limiter\": {\"ops\": {\"size\": 50, \"refill_time\": 100}}}");
        assertNoContent("PATCH", "/network-interfaces/iface_1", "{\"iface_id\": \"iface_1\", \"rx_rate_limiter\": {\"bandwidth\":"
                + " {\"size\": 1048576, \"refill_time\": 1000}, \"ops\": {\"size\": 2000, \"refill_time\": 1000}}}");
        String config = send("GET", "/vm/config", null).body();
        assertThat(config).contains("\"rate_limiter\":{\"bandwidth\":{\"size\":1000,\"one_time_burst\":100,\"refill_time\":10},"
                + "\"ops\":{\"size\":50,\"one_time_burst\":0,\"refill_time\":100}}");
        assertThat(config).contains("\"rx_rate_limiter\":{\"bandwidth\":{\"size\":1048576,\"one_time_burst\":0,\"refill_time\":1000},"
                + "\"ops\":{\"size\":2000,\"one_time_burst\":0,\"refill_time\":1000}},"
                + "\"tx_rate_limiter\":{\"bandwidth\":{\"size\":1024,\"one_time_burst\":1048576,\"refill_time\":1000}}");

        assertFault(400, "drives/nope: there is no drive nope to change; PUT /drives/nope first", "PATCH", "/drives/nope",
                "{\"drive_id\": \"nope\"}");
        assertFault(400, "drives/data.drive_id: 'other' differs from the id in the path, 'data'", "PATCH", "/drives/data",
                "{\"drive_id\": \"other\"}");
        assertFault(400, "drives/data.drive_id: is required", "PATCH", "/drives/data", "{\"rate_limiter\": null}");
        assertFault(400, "drives/data.is_read_only: unknown key; the keys here are drive_id, path_on_host, rate_limiter", "PATCH",
                "/drives/data", "{\"drive_id\": \"data\", \"is_read_only\": true}");
        assertFault(400, "drives/data.rate_limiter.bandwidth.size: -1 is not an integer from 0 to 9223372036854775807", "PATCH",
                "/drives/data", "{\"drive_id\": \"data\", \"rate_limiter\": {\"bandwidth\": {\"size\": -1, \"refill_time\": 100}}}");
        Path qed = Files.writeString(dir.resolve("disk.qed"), "QED\0");
        assertFault(400, "drives/data.path_on_host: " + qed + " is a QED image (QEMU enhanced disk), which Panamax cannot read yet;"
                + " convert it with 'qemu-img convert -f qed -O qcow2 " + qed + " " + dir.resolve("disk.qcow2") + "' first", "PATCH",
                "/drives/data", "{\"drive_id\": \"data\", \"path_on_host\": \"" + qed + "\"}");
        assertFault(400, "network-interfaces/iface_1.rx_rate_limiter.ops.size: is required", "PATCH", "/network-interfaces/iface_1",
                "{\"iface_id\": \"iface_1\", \"rx_rate_limiter\": {\"ops\": {\"refill_time\": 100}}}");
        assertFault(400, "network-interfaces/iface_1.rx_rate_limiter.ops.refill_time: expected an integer, not the number 0.5", "PATCH",
                "/network-interfaces/iface_1", "{\"iface_id\": \"iface_1\", \"rx_rate_limiter\": {\"ops\": {\"size\": 1, \"refill_time\": 0.5}}}");

        assertThat(state()).isEqualTo("Not started");
    }

    @Test
    void patchChangesARunningDrivesRateLimiter() throws Exception {
        Path disk = Files.write(dir.resolve("data.img"), new byte[4096]);
        assertNoContent("PUT", "/boot-source", bootSource());
        assertNoContent("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
        assertNoContent("PUT", "/drives/data", "{\"drive_id\": \"data\", \"path_on_host\": \"" + disk + "\", \"is_root_device\": false,"
                + " \"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"one_time_burst\": 100, \"refill_time\": 10},"
                + " \"ops\": {\"size\": 50, \"refill_time\": 100}}}");
        assertNoContent("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        try (VirtualMachine vm = plane.awaitStarted()) {
            assertThat(vm.driveRateLimiter("data")).as("the device has the configured limits")
                    .isEqualTo(new RateLimiter(new TokenBucket(1000, 100, 10), new TokenBucket(50, 0, 100)));
            assertNoContent("PATCH", "/drives/data", "{\"drive_id\": \"data\", \"rate_limiter\": {\"bandwidth\": {\"size\": 1048576,"
                    + " \"refill_time\": 1000}}}");
            assertThat(vm.driveRateLimiter("data")).as("the running device took the new bandwidth and kept its ops")
                    .isEqualTo(new RateLimiter(new TokenBucket(1048576, 0, 1000), new TokenBucket(50, 0, 100)));
            assertThat(send("GET", "/vm/config", null).body()).contains("\"rate_limiter\":{\"bandwidth\":{\"size\":1048576,");
            assertNoContent("PATCH", "/drives/data", "{\"drive_id\": \"data\", \"path_on_host\": \"" + disk + "\","
                    + " \"rate_limiter\": {\"ops\": {\"size\": 0, \"refill_time\": 0}}}");
            assertThat(vm.driveRateLimiter("data")).as("a bucket of size 0 is off")
                    .isEqualTo(new RateLimiter(new TokenBucket(1048576, 0, 1000), null));
            assertFault(400, "drives/data.path_on_host: Panamax cannot change the image of a drive while the VM runs (it is " + disk
                    + "); leave path_on_host out, or give the same path", "PATCH", "/drives/data",
                    "{\"drive_id\": \"data\", \"path_on_host\": \"" + dir.resolve("other.img") + "\"}");
            assertFault(400, "drives/nope: the VM has no drive nope", "PATCH", "/drives/nope", "{\"drive_id\": \"nope\"}");
            assertFault(400, "network-interfaces/eth9: the VM has no network interface eth9", "PATCH", "/network-interfaces/eth9",
                    "{\"iface_id\": \"eth9\"}");
            vm.kill();
            assertFault(400, "drives/data: the VM has exited", "PATCH", "/drives/data",
                    "{\"drive_id\": \"data\", \"rate_limiter\": {\"ops\": {\"size\": 1, \"refill_time\": 1}}}");
        }
    }

    @Test
    void moreDevicesThanPciHasRoomForAreTheClientsFault() throws Exception {
        Path disk = Files.write(dir.resolve("disk.img"), new byte[512]);
        String drive = "{\"drive_id\": \"%s\", \"path_on_host\": \"" + disk + "\", \"is_root_device\": false,"
                + " \"is_read_only\": true, \"transport\": \"%s\"}";
        assertNoContent("PUT", "/boot-source", bootSource());
        assertNoContent("PUT", "/machine-config", "{\"vcpu_count\": 254, \"mem_size_mib\": 64}");
        for (int i = 0; i < 9; i++) {
            assertNoContent("PUT", "/drives/d" + i, drive.formatted("d" + i, "pci"));
        }
        assertFault(400, "drives and network-interfaces: with 254 vCPUs, 9 drives on PCI and 0 network interfaces need 2295 MSI-X"
                + " vectors (a drive on PCI one per vCPU and one more, a network interface 4), more than a VM's 2048; use fewer vCPUs,"
                + " or put drives on virtio-mmio", "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");

        assertNoContent("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
        for (int i = 9; i < 31; i++) {
            assertNoContent("PUT", "/drives/d" + i, drive.formatted("d" + i, "pci"));
        }
        assertFault(400, "drives and network-interfaces: 31 drives on PCI and 0 network interfaces are 31 PCI devices,"
                + " more than the 30 slots the bus has for them (of its 31, one holds the pvpanic device); put drives on virtio-mmio", "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");

        assertNoContent("PUT", "/drives/d30", drive.formatted("d30", "mmio"));
        assertNoContent("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        try (VirtualMachine _ = plane.awaitStarted()) {
            assertThat(state()).as("30 devices on PCI and pvpanic fill its bus").isEqualTo("Running");
        }
    }

    @Test
    void aFailedInstanceStartLeavesTheVmToBeConfigured() throws IOException {
        Path disk = Files.write(dir.resolve("disk.img"), new byte[512]);
        assertNoContent("PUT", "/boot-source", bootSource());
        assertNoContent("PUT", "/drives/data", "{\"drive_id\": \"data\", \"path_on_host\": \"" + disk + "\", \"is_root_device\": false}");
        try (var _ = Images.open(disk, Images.OpenOptions.readWrite().withLock())) {
            assertFault(400, "drive data: disk image " + disk + " is in use by another process (locked); stop the VM using it,"
                    + " or give this one a copy (or attach it read-only to every VM)", "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        }
        Path text = Files.writeString(dir.resolve("notes.txt"), "not a kernel");
        assertNoContent("PUT", "/boot-source", "{\"kernel_image_path\": \"" + text + "\"}");
        ApiClient.Response unbootable = send("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        assertThat(unbootable.status()).isEqualTo(400);
        assertThat(unbootable.faultMessage()).contains("not a Linux kernel");
        assertThat(state()).isEqualTo("Not started");
    }

    @Test
    void fiftyConcurrentRequestsWhileTheVmRunsAllSucceed() throws Exception {
        assertNoContent("PUT", "/boot-source", bootSource());
        assertNoContent("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        List<String> paths = List.of("/", "/metrics", "/vm/config", "/machine-config", "/version");
        ExecutorService pool = Executors.newFixedThreadPool(50);
        try (VirtualMachine vm = plane.awaitStarted()) {
            assertThat(vm.state()).isEqualTo(VirtualMachine.State.RUNNING);
            List<Callable<Integer>> requests = new ArrayList<>();
            for (int i = 0; i < 50; i++) {
                String path = paths.get(i % paths.size());
                requests.add(() -> send("GET", path, null).status());
            }
            List<Integer> statuses = new ArrayList<>();
            for (Future<Integer> f : pool.invokeAll(requests)) {
                statuses.add(f.get());
            }
            assertThat(statuses).hasSize(50).containsOnly(200);
            assertThat(((Map<?, ?>) send("GET", "/metrics", null).json()).get("api_requests")).isEqualTo(53L);
        } finally {
            pool.shutdownNow();
        }
    }
}
