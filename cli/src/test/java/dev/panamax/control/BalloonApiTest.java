package dev.panamax.control;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.api.Balloon;
import dev.panamax.api.VirtualMachine;
import dev.panamax.rig.UsesKvm;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Firecracker's balloon endpoints over the real socket, with the payloads of Firecracker's swagger
 * file and {@code docs/ballooning.md}, and bad ones. The guest is a stand-in kernel with no balloon
 * driver: the guest's side is the device's unit tests' and the boot test's.
 */
@UsesKvm
class BalloonApiTest {
    @TempDir Path dir;
    private Path kernel;
    private ControlPlane plane;
    private ApiServer server;
    private ApiClient client;

    @BeforeEach
    void serve() throws IOException {
        kernel = TestKernels.spinning(dir);
        plane = new ControlPlane(config -> config.toBuilder().build(), "1.2.3");
        server = ApiServer.start(dir.resolve("api.sock"), plane);
        client = new ApiClient(dir.resolve("api.sock"));
    }

    @AfterEach
    void stop() {
        server.close();
    }

    private ApiClient.Response send(String method, String path, String body) throws IOException {
        return client.send(method, path, body);
    }

    private void assertFault(String message, String method, String path, String body) throws IOException {
        ApiClient.Response r = send(method, path, body);
        assertThat(r.status()).as(r.body()).isEqualTo(400);
        assertThat(r.json()).isEqualTo(Map.of("fault_message", message));
    }

    private void assertNoContent(String method, String path, String body) throws IOException {
        ApiClient.Response r = send(method, path, body);
        assertThat(r.status()).as(r.body()).isEqualTo(204);
    }

    private Object get(String path) throws IOException {
        ApiClient.Response r = send("GET", path, null);
        assertThat(r.status()).as(r.body()).isEqualTo(200);
        return r.json();
    }

    private static Map<String, Object> balloon(long amount, boolean oom, long interval) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("amount_mib", amount);
        json.put("deflate_on_oom", oom);
        json.put("stats_polling_interval_s", interval);
        return json;
    }

    private void bootSource() throws IOException {
        assertNoContent("PUT", "/boot-source", "{\"kernel_image_path\": \"" + kernel + "\"}");
        assertNoContent("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
    }

    @Test
    void firecrackersPreBootPayloadsConfigureTheBalloon() throws IOException {
        assertFault("balloon: no balloon is configured; PUT /balloon first", "GET", "/balloon", null);
        assertFault("balloon: there is no balloon to change; PUT /balloon first", "PATCH", "/balloon", "{\"amount_mib\": 1}");
        // Firecracker's docs/ballooning.md, its config file's object and its curl example.
        assertNoContent("PUT", "/balloon", "{\"amount_mib\": 0, \"deflate_on_oom\": false, \"stats_polling_interval_s\": 1}");
        assertThat(get("/balloon")).isEqualTo(balloon(0, false, 1));
        assertNoContent("PUT", "/balloon", "{\"amount_mib\": 16, \"deflate_on_oom\": true}");
        assertThat(get("/balloon")).isEqualTo(balloon(16, true, 0));
        assertNoContent("PATCH", "/balloon", "{\"amount_mib\": 32}");
        assertNoContent("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 5}");
        assertThat(get("/balloon")).isEqualTo(balloon(32, true, 5));
        bootSource();
        assertThat(((Map<?, ?>) get("/vm/config")).get("balloon")).isEqualTo(balloon(32, true, 5));
        assertFault("balloon/statistics: the balloon's statistics come from the guest; start the VM first", "GET",
                "/balloon/statistics", null);
    }

    @Test
    void badBalloonPayloadsAreRefusedNamingTheValue() throws IOException {
        assertFault("balloon.amount_mib: is required", "PUT", "/balloon", "{\"deflate_on_oom\": false}");
        assertFault("balloon.deflate_on_oom: is required", "PUT", "/balloon", "{\"amount_mib\": 1}");
        assertFault("balloon.amount_mib: -1 is not a balloon size: use 0 MiB or more", "PUT", "/balloon",
                "{\"amount_mib\": -1, \"deflate_on_oom\": false}");
        assertFault("balloon.amount_mib: expected an integer, not the string \"64\"", "PUT", "/balloon",
                "{\"amount_mib\": \"64\", \"deflate_on_oom\": false}");
        assertFault("balloon.stats_polling_interval_s: -5 is not a statistics interval: use 0 (no statistics) to 86400 seconds",
                "PUT", "/balloon", "{\"amount_mib\": 1, \"deflate_on_oom\": false, \"stats_polling_interval_s\": -5}");
        assertFault("balloon.must_tell_host: unknown key; the keys here are amount_mib, deflate_on_oom, stats_polling_interval_s",
                "PUT", "/balloon", "{\"amount_mib\": 1, \"deflate_on_oom\": false, \"must_tell_host\": true}");
        assertNoContent("PUT", "/balloon", "{\"amount_mib\": 1, \"deflate_on_oom\": false}");
        assertFault("balloon.deflate_on_oom: unknown key; the keys here are amount_mib", "PATCH", "/balloon",
                "{\"amount_mib\": 2, \"deflate_on_oom\": true}");
        assertFault("balloon/statistics.stats_polling_interval_s: is required", "PATCH", "/balloon/statistics", "{}");

        // Larger than the guest: refused when the machine is known, at InstanceStart.
        bootSource();
        assertNoContent("PUT", "/balloon", "{\"amount_mib\": 65, \"deflate_on_oom\": false}");
        assertFault("balloon.amount_mib: 65 MiB is not a balloon size for a guest of 64 MiB: use 0 to 64", "PUT", "/actions",
                "{\"action_type\": \"InstanceStart\"}");
        assertNoContent("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64, \"huge_pages\": \"2M\"}");
        assertNoContent("PUT", "/balloon", "{\"amount_mib\": 1, \"deflate_on_oom\": false}");
        assertFault("balloon: a balloon cannot give back 4 KiB pages of memory on 2M huge pages (machine-config.huge_pages);"
                + " leave the balloon out, or use ordinary pages", "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
    }

    @Test
    void afterInstanceStartTheTargetAndIntervalChangeAndTheOptionsDoNot() throws Exception {
        bootSource();
        assertNoContent("PUT", "/balloon", "{\"amount_mib\": 8, \"deflate_on_oom\": false, \"stats_polling_interval_s\": 1}");
        assertNoContent("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        try (VirtualMachine vm = plane.awaitStarted()) {
            assertFault("balloon: can only be set before InstanceStart, and the VM has started", "PUT", "/balloon",
                    "{\"amount_mib\": 8, \"deflate_on_oom\": true}");

            assertNoContent("PATCH", "/balloon", "{\"amount_mib\": 48}");

            assertThat(get("/balloon")).isEqualTo(balloon(48, false, 1));
            assertThat(vm.balloon()).isEqualTo(new Balloon(48, false, 1));
            assertThat(((Map<?, ?>) get("/vm/config")).get("balloon")).isEqualTo(balloon(48, false, 1));
            // No balloon driver in this guest: the sizes only, no statistics yet.
            assertThat(get("/balloon/statistics")).isEqualTo(Map.of("target_pages", 48L * 256, "actual_pages", 0L, "target_mib", 48L,
                    "actual_mib", 0L));
            assertFault("amount_mib: 65 MiB is not a balloon size for a guest of 64 MiB: use 0 to 64", "PATCH", "/balloon",
                    "{\"amount_mib\": 65}");

            assertNoContent("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 7}");
            assertThat(get("/balloon")).isEqualTo(balloon(48, false, 7));
            assertFault("balloon/statistics.stats_polling_interval_s: the balloon was made with statistics, so they cannot be turned"
                    + " off (interval 0); give an interval of 1 second or more", "PATCH", "/balloon/statistics",
                    "{\"stats_polling_interval_s\": 0}");
        }
    }

    @Test
    void aBalloonWithoutStatisticsRefusesThemAfterBootAndAVmWithoutABalloonRefusesAll() throws Exception {
        bootSource();
        assertNoContent("PUT", "/balloon", "{\"amount_mib\": 0, \"deflate_on_oom\": true}");
        assertNoContent("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        try (VirtualMachine _ = plane.awaitStarted()) {
            assertFault("balloon/statistics: the balloon has no statistics: it was built with stats_polling_interval_s 0;"
                    + " PUT /balloon with a stats_polling_interval_s above 0 before InstanceStart to have them", "GET",
                    "/balloon/statistics", null);
            assertFault("balloon/statistics.stats_polling_interval_s: the balloon was made without statistics"
                    + " (stats_polling_interval_s 0), so they cannot be turned on now", "PATCH", "/balloon/statistics",
                    "{\"stats_polling_interval_s\": 3}");
        }
        server.close();

        plane = new ControlPlane(config -> config.toBuilder().build(), "1.2.3");
        Files.deleteIfExists(dir.resolve("api.sock"));
        server = ApiServer.start(dir.resolve("api.sock"), plane);
        bootSource();
        assertNoContent("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        try (VirtualMachine _ = plane.awaitStarted()) {
            String none = "balloon: the VM has no balloon (one is added before InstanceStart, with PUT /balloon)";
            assertFault(none, "GET", "/balloon", null);
            assertFault(none, "PATCH", "/balloon", "{\"amount_mib\": 1}");
            assertFault(none, "GET", "/balloon/statistics", null);
            assertFault(none, "PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 1}");
        }
    }
}
