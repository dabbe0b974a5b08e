package dev.panamax.cli;

import static dev.panamax.cli.CliRun.panamax;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.control.TestKernels;
import dev.panamax.rig.UsesKvm;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code panamax firecracker}: Firecracker's flags parsed, the ones without an equivalent refused by
 * name, the name {@code firecracker} dispatching to it, and the config file booting at once (a
 * stand-in kernel that resets: booting Linux is integration-tests').
 */
@UsesKvm
@Timeout(120)
class FirecrackerCommandTest {
    @TempDir Path dir;

    private static FirecrackerCommand parse(String... args) {
        FirecrackerCommand command = new FirecrackerCommand();
        new CommandLine(command).parseArgs(args);
        return command;
    }

    private Path configFile(String more) throws Exception {
        return Files.writeString(dir.resolve("vm.json"), """
                {"boot-source": {"kernel_image_path": "%s", "boot_args": "quiet"},
                 "machine-config": {"vcpu_count": 1, "mem_size_mib": 64}%s}
                """.formatted(TestKernels.resetting(dir), more));
    }

    @Test
    void everyAcceptedFlagIsParsedWithFirecrackersMeaning() {
        FirecrackerCommand defaults = parse();
        assertThat(defaults.apiSocket).isEqualTo(Path.of("/run/firecracker.socket"));
        assertThat(defaults.id).isEqualTo("anonymous-instance");
        assertThat(defaults.maxPayload).isEqualTo(51_200);
        assertThat(defaults.configFile).isNull();
        assertThat(List.of(defaults.noApi, defaults.showLevel, defaults.showLogOrigin, defaults.bootTimer, defaults.version,
                defaults.enablePci, defaults.noSeccomp)).containsOnly(false);

        FirecrackerCommand c = parse("--api-sock", "/tmp/fc.sock", "--config-file", "vm.json", "--no-api", "--id", "vm-1",
                "--level", "Debug", "--log-path", "/tmp/fc.log", "--module", "dev.panamax.virtio", "--show-level", "--show-log-origin",
                "--metrics-path", "/tmp/fc.metrics", "--boot-timer", "--version", "--http-api-max-payload-size", "51200",
                "--enable-pci", "--no-seccomp");
        assertThat(c.apiSocket).isEqualTo(Path.of("/tmp/fc.sock"));
        assertThat(c.configFile).isEqualTo(Path.of("vm.json"));
        assertThat(c.id).isEqualTo("vm-1");
        assertThat(c.level).isEqualTo("Debug");
        assertThat(c.logPath).isEqualTo("/tmp/fc.log");
        assertThat(c.module).isEqualTo("dev.panamax.virtio");
        assertThat(c.metricsPath).isEqualTo("/tmp/fc.metrics");
        assertThat(List.of(c.noApi, c.showLevel, c.showLogOrigin, c.bootTimer, c.version, c.enablePci, c.noSeccomp)).containsOnly(true);

        List<String> flags = new ArrayList<>(FirecrackerCommand.acceptedFlags());
        flags.addAll(FirecrackerCommand.REFUSED.keySet());
        CommandLine cli = new CommandLine(new FirecrackerCommand());
        for (String flag : flags) {
            assertThat(cli.getCommandSpec().findOption(flag)).as(flag + " is an option").isNotNull();
        }
    }

    @Test
    void theReadmesCompatibilityTableHasARowForEveryFlag() throws Exception {
        String readme = Files.readString(Path.of(System.getProperty("user.dir")).resolveSibling("README.md"));
        String table = readme.substring(readme.indexOf("### Firecracker compatibility"));
        List<String> flags = new ArrayList<>(FirecrackerCommand.acceptedFlags());
        flags.addAll(FirecrackerCommand.REFUSED.keySet());
        for (String flag : flags) {
            assertThat(table).as(flag).containsPattern("(?m)^\\| [^|]*`" + flag + "[` ]");
        }
    }

    @Test
    void flagsWithoutAnEquivalentAreRefusedByName() {
        Map<String, List<String>> uses = Map.of(
                "--seccomp-filter", List.of("--seccomp-filter", "filter.bpf"),
                "--start-time-us", List.of("--start-time-us", "1000"),
                "--start-time-cpu-us", List.of("--start-time-cpu-us", "10"),
                "--parent-cpu-time-us", List.of("--parent-cpu-time-us", "10"),
                "--metadata", List.of("--metadata", "mmds.json"),
                "--mmds-size-limit", List.of("--mmds-size-limit", "51200"),
                "--snapshot-version", List.of("--snapshot-version"),
                "--describe-snapshot", List.of("--describe-snapshot", "vm.state"));
        assertThat(uses.keySet()).isEqualTo(FirecrackerCommand.REFUSED.keySet());
        for (var use : uses.entrySet()) {
            List<String> args = new ArrayList<>(List.of("firecracker", "--api-sock", dir.resolve("x.sock").toString()));
            args.addAll(use.getValue());
            CliRun r = panamax(args.toArray(String[]::new));
            assertThat(r.status()).as(use.getKey()).isEqualTo(2);
            assertThat(r.err().strip()).isEqualTo("panamax: " + use.getKey() + " is a Firecracker flag Panamax refuses: "
                    + FirecrackerCommand.REFUSED.get(use.getKey()) + "; leave it out");
            assertThat(dir.resolve("x.sock")).as("nothing served").doesNotExist();
        }
        CliRun payload = panamax("firecracker", "--http-api-max-payload-size", "1000000");
        assertThat(payload.status()).isEqualTo(2);
        assertThat(payload.err()).contains("--http-api-max-payload-size 1000000: Panamax's API takes request bodies of up to 51200");
        CliRun unknown = panamax("firecracker", "--jailed");
        assertThat(unknown.status()).isEqualTo(2);
        assertThat(unknown.err()).contains("Unknown option: '--jailed'");
    }

    @Test
    void badValuesAndCombinationsAreUsageErrors() throws Exception {
        CliRun noApi = panamax("firecracker", "--no-api");
        assertThat(noApi.status()).isEqualTo(2);
        assertThat(noApi.err().strip()).isEqualTo("panamax: --no-api needs --config-file: without the API, the VM can only come from a config file");

        CliRun id = panamax("firecracker", "--no-api", "--config-file", configFile("").toString(), "--id", "my vm");
        assertThat(id.status()).isEqualTo(2);
        assertThat(id.err()).contains("--id: \"my vm\" is not an instance id: use 1 to 64 letters, digits or hyphens");

        CliRun level = panamax("firecracker", "--no-api", "--config-file", configFile("").toString(), "--level", "Loud");
        assertThat(level.status()).isEqualTo(2);
        assertThat(level.err()).contains("--level: logger.level: \"Loud\" is not a log level");

        Path taken = Files.writeString(dir.resolve("taken.sock"), "");
        CliRun inUse = panamax("firecracker", "--api-sock", taken.toString());
        assertThat(inUse.status()).as("an existing socket path is an error, as in Firecracker").isEqualTo(2);
        assertThat(inUse.err()).contains("cannot serve the API on " + taken + ": " + taken + " exists already");
    }

    @Test
    void versionPrintsPanamaxsVersionInFirecrackersShape() {
        CliRun r = panamax("firecracker", "--version");
        assertThat(r.status()).isZero();
        assertThat(r.out()).isEqualTo("Panamax v" + Panamax.version() + "\n\n");
    }

    @Test
    void startedAsFirecrackerPanamaxTakesFirecrackersCommandLine() {
        PrintStream oldOut = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            assertThat(Panamax.executeAs("firecracker", "--version")).isZero();
            assertThat(out.toString(StandardCharsets.UTF_8)).isEqualTo("Panamax v" + Panamax.version() + "\n\n");
            out.reset();
            assertThat(Panamax.executeAs("panamax", "--version")).isZero();
            assertThat(out.toString(StandardCharsets.UTF_8)).startsWith("panamax " + Panamax.version() + " (Java ");
        } finally {
            System.setOut(oldOut);
        }
    }

    @Test
    void withNoApiTheConfigFileBootsAtOnceAndItsLoggerAndTheFlagsLog() throws Exception {
        Path log = dir.resolve("fc.log");
        CliRun r = panamax("firecracker", "--no-api", "--config-file", configFile("").toString(), "--console", "none",
                "--id", "vm-42", "--log-path", log.toString(), "--level", "info", "--show-level");
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.err()).doesNotContain("serving the API");
        assertThat(Files.readAllLines(log)).anySatisfy(line -> assertThat(line).matches(".* \\[vm-42:[^:]+:INFO\\] Running Panamax v.*"));

        Path fileLog = dir.resolve("file.log");
        CliRun fromFile = panamax("firecracker", "--no-api", "--console", "none", "--config-file",
                configFile(", \"logger\": {\"log_path\": \"" + fileLog + "\", \"level\": \"Info\", \"show_log_origin\": true}").toString());
        assertThat(fromFile.status()).as(fromFile.err()).isZero();
        assertThat(Files.readAllLines(fileLog)).anySatisfy(line -> assertThat(line)
                .matches(".* \\[anonymous-instance:[^:]+:dev\\.panamax\\.control\\.ControlPlane\\.putLogger\\] Running Panamax v.*"));
    }

    @Test
    void metricsPathTakesTheVmsMetricsLinesAsPutMetricsWould() throws Exception {
        Path metrics = dir.resolve("fc.metrics");
        CliRun r = panamax("firecracker", "--no-api", "--config-file", configFile("").toString(), "--console", "none",
                "--metrics-path", metrics.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(Files.readAllLines(metrics)).as("the line flushed as the VMM ended").last().satisfies(line -> assertThat(line)
                .startsWith("{\"utc_timestamp_ms\":").contains("\"vcpu\":{").contains("\"put_api_requests\":{"));

        CliRun twice = panamax("firecracker", "--no-api", "--console", "none", "--metrics-path", metrics.toString(), "--config-file",
                configFile(", \"metrics\": {\"metrics_path\": \"" + metrics + "\"}").toString());
        assertThat(twice.status()).as("the flag and the config file's metrics both").isEqualTo(Panamax.EXIT_USAGE);
        assertThat(twice.err()).contains("metrics");
    }

    @Test
    void withTheApiTheConfigFileBootsAtOnceAndTheSocketGoesWithTheVm() throws Exception {
        Path socket = dir.resolve("fc.sock");
        CliRun r = panamax("firecracker", "--api-sock", socket.toString(), "--config-file", configFile("").toString(),
                "--console", "none");
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.err()).contains("panamax: serving the API on " + socket);
        assertThat(socket).doesNotExist();
    }
}
