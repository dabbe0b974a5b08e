package dev.panamax.control;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.vmm.ConfigException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Set;

/**
 * What a client or a config file says, from a fuzzer's bytes: JSON text, whole config files, and
 * sequences of REST requests to a {@link ControlPlane} that has no VM (InstanceStart is refused). A
 * malformed or unacceptable value may only give {@link ConfigException}; a refused request only an
 * {@link ApiFault} that is not {@link ApiFault.Internal}.
 *
 * <p>Paths in the seeds are relative to the module's directory, where the tests run: {@code pom.xml}
 * stands in for a kernel and a disk image (the config checks only that they are readable files).
 */
class ConfigFuzzTest {
    /** Requests that open or create host files at paths from the body: fuzzed, they could write anywhere. Their bodies' parsers are fuzzed by configFile. */
    private static final Set<String> FILE_OPENING = Set.of("PUT /logger", "PUT /metrics", "PUT /snapshot/load");
    private static final int MAX_REQUESTS = 32;

    /** Any text: parsed, what parses must write back as JSON that parses to the same value. */
    @FuzzTest
    void jsonText(byte[] input) {
        String text = new String(input, StandardCharsets.UTF_8);
        Object value;
        try {
            value = Json.parse(text, "fuzz");
        } catch (ConfigException refused) {
            return;
        }
        assertThat(Json.parse(Json.write(value), "written")).isEqualTo(value);
    }

    /**
     * A config file (Firecracker's --config-file): the JSON an accepted one answers {@code GET /vm/config}
     * with (which leaves out the metrics and logger) must parse back to the same answer.
     */
    @FuzzTest
    void configFile(byte[] input) {
        VmConfig config;
        try {
            config = VmConfig.parseFile(VmConfig.utf8(input, "fuzz"), "fuzz").vm();
        } catch (ConfigException refused) {
            return;
        }
        Map<String, Object> json = config.toJson();
        assertThat(VmConfig.parse(Json.write(json), "written").toJson()).isEqualTo(json);
    }

    /**
     * REST requests, separated by NUL bytes, each {@code METHOD PATH}, a newline and the body; a
     * request without a newline has no body.
     */
    @FuzzTest
    void apiRequests(byte[] input) {
        ControlPlane plane = new ControlPlane(config -> {
            throw new ConfigException("fuzz", "no VM is built while fuzzing");
        }, "0.0.0-fuzz");
        String[] requests = new String(input, StandardCharsets.UTF_8).split("\0", MAX_REQUESTS + 1);
        for (int i = 0; i < Math.min(requests.length, MAX_REQUESTS); i++) {
            String request = requests[i];
            int newline = request.indexOf('\n');
            String line = newline < 0 ? request : request.substring(0, newline);
            byte[] body = newline < 0 ? new byte[0] : request.substring(newline + 1).getBytes(StandardCharsets.UTF_8);
            int space = line.indexOf(' ');
            String method = space < 0 ? line : line.substring(0, space);
            String path = space < 0 ? "/" : line.substring(space + 1);
            if (FILE_OPENING.contains(method + " " + path)) {
                continue;
            }
            try {
                plane.handle(method, path, body);
            } catch (ApiFault.Internal bug) {
                throw bug;
            } catch (ApiFault refused) {
                // the documented answer to a request that is not done
            }
        }
        plane.close();
    }
}
