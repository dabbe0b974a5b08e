package dev.panamax.control;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vmm.ConfigException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code PUT /logger} with Firecracker's example payloads (its API tests' and swagger's) and bad
 * ones, the lines it writes to a file and to a named pipe, and the config file's {@code logger}.
 */
@Timeout(120)
class LoggerApiTest {
    private static final String LINE_START = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{9} ";

    @TempDir Path dir;
    private final ControlPlane plane = new ControlPlane(config -> config.toBuilder().build(), java.io.OutputStream.nullOutputStream(), "1.2.3", "vm-7");
    private final System.Logger log = System.getLogger("dev.panamax.test.Component");

    @AfterEach
    void restoreTheLog() {
        if (plane.logOutput() != null) {
            plane.logOutput().close();
        }
    }

    private ControlPlane.Response put(String json) {
        return plane.handle("PUT", "/logger", json.getBytes(StandardCharsets.UTF_8));
    }

    private List<String> lines(Path file) throws Exception {
        assertThat(plane.logOutput().flush(30_000)).as("the writer thread wrote what was queued").isTrue();
        return Files.readAllLines(file);
    }

    @Test
    void firecrackersExamplePayloadConfiguresTheLogFile() throws Exception {
        Path file = dir.resolve("log");
        assertThat(put("{\"log_path\": \"" + file + "\", \"level\": \"Warning\", \"show_level\": false, \"show_log_origin\": false}")
                .status()).isEqualTo(204);
        log.log(System.Logger.Level.INFO, "not at Warning");
        log.log(System.Logger.Level.WARNING, "disk {0} is slow", "rootfs");

        List<String> lines = lines(file);
        assertThat(lines).hasSize(1);
        assertThat(lines.getFirst()).matches(LINE_START + "\\[vm-7:" + Thread.currentThread().getName() + "\\] disk rootfs is slow");
    }

    @Test
    void levelsAreCaseInsensitiveAndShowLevelAndOriginTagTheLine() throws Exception {
        Path file = dir.resolve("log");
        assertThat(put("{\"log_path\": \"" + file + "\", \"level\": \"DEBUG\", \"show_level\": true, \"show_log_origin\": true}")
                .status()).isEqualTo(204);
        log.log(System.Logger.Level.DEBUG, "a detail");
        log.log(System.Logger.Level.TRACE, "below Debug");

        List<String> lines = lines(file);
        assertThat(lines).as("the header at Info, then the detail").hasSize(2);
        assertThat(lines.get(0)).matches(LINE_START + "\\[vm-7:.*:INFO:dev\\.panamax\\.control\\.ControlPlane\\.putLogger\\] Running Panamax v1\\.2\\.3");
        assertThat(lines.get(1)).matches(LINE_START + "\\[vm-7:[^:]+:DEBUG:dev\\.panamax\\.control\\.LoggerApiTest"
                + "\\.levelsAreCaseInsensitiveAndShowLevelAndOriginTagTheLine\\] a detail");
    }

    @Test
    void moduleKeepsOnlyItsLoggersAndAPutReplacesTheLastOne() throws Exception {
        Path first = dir.resolve("first.log");
        Path second = dir.resolve("second.log");
        put("{\"log_path\": \"" + first + "\", \"level\": \"Info\", \"module\": \"dev.panamax.test\"}");
        System.getLogger("dev.panamax.virtio.Other").log(System.Logger.Level.ERROR, "elsewhere");
        log.log(System.Logger.Level.INFO, "here");
        assertThat(lines(first)).singleElement().asString().endsWith("] here");

        put("{\"log_path\": \"" + second + "\", \"level\": \"Off\"}");
        log.log(System.Logger.Level.ERROR, "not even an error");
        assertThat(lines(second)).isEmpty();
        assertThat(Files.readAllLines(first)).as("the first output is closed").hasSize(1);
        plane.logOutput().close();
        assertThat(java.util.logging.Logger.getLogger("").getHandlers()).as("closing the second puts back what the first replaced")
                .noneMatch(h -> h.getClass().getName().startsWith(LogOutput.class.getName()));
    }

    @Test
    void aNamedPipeWithoutAReaderNeverHoldsUpTheVmm() throws Exception {
        Path fifo = dir.resolve("log.fifo");
        assertThat(new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor()).isZero();
        assertThat(put("{\"log_path\": \"" + fifo + "\"}").status()).as("opened without waiting for a reader").isEqualTo(204);
        // Far more than a pipe holds (64 KiB) and than the queue holds: none of these calls may wait.
        String filler = "x".repeat(200);
        for (int i = 0; i < 20_000; i++) {
            log.log(System.Logger.Level.INFO, filler);
        }
        assertThat(plane.logOutput().missedLines()).as("lines dropped, not waited for").isPositive();

        try (InputStream in = Files.newInputStream(fifo)) {
            String start = new String(in.readNBytes(64), StandardCharsets.UTF_8);
            assertThat(start).as("a reader gets the lines").matches(LINE_START + "\\[vm-7:.*");
        }
    }

    @Test
    void badPayloadsAreRefusedNamingTheValue() throws IOException {
        Path socket = dir.resolve("api.sock");
        try (ApiServer _ = ApiServer.start(socket, plane)) {
            ApiClient client = new ApiClient(socket);
            Map<String, String> faults = Map.of(
                    "{\"invalid_field\": \"log\", \"level\": \"Warning\"}",
                    "logger.invalid_field: unknown key; the keys here are level, log_path, module, show_level, show_log_origin",
                    "{\"log_path\": \"" + dir.resolve("l") + "\", \"level\": \"Loud\"}",
                    "logger.level: \"Loud\" is not a log level; the levels are Off, Error, Warning, Info, Debug, Trace (in any case)",
                    "{\"log_path\": \"" + dir.resolve("l") + "\", \"show_level\": \"yes\"}",
                    "logger.show_level: expected true or false, not the string \"yes\"",
                    "{\"log_path\": 7}", "logger.log_path: expected a string, not the number 7",
                    "{\"log_path\": \"" + dir + "\"}", "logger.log_path: cannot open " + dir + " for the log: " + dir
                            + " is neither a regular file nor a named pipe",
                    "[]", "logger: expected a JSON object, not an array");
            for (var fault : faults.entrySet()) {
                ApiClient.Response r = client.send("PUT", "/logger", fault.getKey());
                assertThat(r.status()).as(fault.getKey()).isEqualTo(400);
                assertThat(r.json()).as(fault.getKey()).isEqualTo(Map.of("fault_message", fault.getValue()));
            }
            assertThat(plane.logOutput()).as("nothing installed").isNull();
        }
    }

    @Test
    void theConfigFilesLoggerIsReadWithTheVm() throws IOException {
        Path kernel = TestKernels.resetting(dir);
        VmConfig.ConfigFile file = VmConfig.parseFile("{\"boot-source\": {\"kernel_image_path\": \"" + kernel + "\"},"
                + " \"logger\": {\"log_path\": \"/tmp/fc.log\", \"level\": \"warn\", \"show_level\": true}}", "vm.json");
        assertThat(file.logger()).isEqualTo(new LoggerConfig(Path.of("/tmp/fc.log"), LoggerConfig.Level.WARNING, true, false, null));
        assertThat(VmConfig.parseFile("{\"boot-source\": {\"kernel_image_path\": \"" + kernel + "\"}}", "vm.json").logger()).isNull();
        assertThatThrownBy(() -> VmConfig.parseFile("{\"boot-source\": {\"kernel_image_path\": \"" + kernel + "\"},"
                + " \"logger\": {\"level\": \"Verbose\"}}", "vm.json")).isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("logger.level: \"Verbose\" is not a log level");
    }
}
