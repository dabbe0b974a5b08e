package dev.panamax.cli;

import static dev.panamax.cli.CliRun.panamax;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.api.VirtualMachine;
import dev.panamax.control.ApiClient;
import dev.panamax.control.ApiServer;
import dev.panamax.control.ControlPlane;
import dev.panamax.control.LogOutput;
import dev.panamax.control.TestKernels;
import dev.panamax.demo.KvmAcceleration;
import dev.panamax.rig.UsesKvm;
import dev.panamax.storage.image.Images;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code panamax serve}, {@code panamax api} and {@code panamax run --api-sock/--config} on this
 * host, with stand-in kernels (booting Linux is integration-tests').
 */
@UsesKvm
class ServeCommandTest {
    @TempDir Path dir;

    /** Waits (bounded) until {@code socket} exists, or fails with what the command printed. */
    private static void awaitSocket(Path socket, CompletableFuture<CliRun> command) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!Files.exists(socket)) {
            if (command.isDone()) {
                throw new AssertionError("the command ended before its socket appeared: " + command.get());
            }
            assertThat(System.nanoTime()).as("waiting for " + socket).isLessThan(deadline);
            Thread.sleep(20);
        }
    }

    @Test
    void serveBootsWhatItsClientConfiguresAndEndsWithTheGuest() throws Exception {
        Path socket = dir.resolve("api.sock");
        Path kernel = TestKernels.resetting(dir);
        CompletableFuture<CliRun> serve = CompletableFuture.supplyAsync(
                () -> panamax("serve", "--api-sock", socket.toString(), "--console", "none"));
        awaitSocket(socket, serve);
        ApiClient client = new ApiClient(socket);

        assertThat(((Map<?, ?>) client.send("GET", "/", null).json()).get("state")).isEqualTo("Not started");
        assertThat(client.send("PUT", "/boot-source", "{\"kernel_image_path\": \"" + kernel + "\"}").status()).isEqualTo(204);
        assertThat(client.send("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}").status()).isEqualTo(204);
        assertThat(client.send("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").status())
                .as("answered although the guest resets at once").isEqualTo(204);

        CliRun r = serve.get(60, TimeUnit.SECONDS);
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.err()).contains("panamax: serving the API on " + socket);
        assertThat(socket).as("removed on exit").doesNotExist();
    }

    @Test
    void serveWritesTheLogItsClientConfiguredUntilItEnds() throws Exception {
        Path socket = dir.resolve("api.sock");
        Path log = dir.resolve("vmm.log");
        CompletableFuture<CliRun> serve = CompletableFuture.supplyAsync(
                () -> panamax("serve", "--api-sock", socket.toString(), "--console", "none"));
        awaitSocket(socket, serve);
        ApiClient client = new ApiClient(socket);
        assertThat(client.send("PUT", "/logger", "{\"log_path\": \"" + log + "\", \"level\": \"Debug\"}").status()).isEqualTo(204);
        client.send("PUT", "/boot-source", "{\"kernel_image_path\": \"" + TestKernels.resetting(dir) + "\"}");
        client.send("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
        client.send("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");

        CliRun r = serve.get(60, TimeUnit.SECONDS);
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(Files.readString(log)).contains("] Running Panamax v", "] The API server received a PUT request on /boot-source",
                "] The API server received a PUT request on /actions");
        assertThat(java.util.logging.Logger.getLogger("").getHandlers()).as("the log was closed: the handlers it replaced are back")
                .noneMatch(h -> h.getClass().getName().startsWith(LogOutput.class.getName()));
    }

    @Test
    void serveRefusesASocketPathInUse() throws Exception {
        Path taken = Files.writeString(dir.resolve("taken.sock"), "");
        CliRun r = panamax("serve", "--api-sock", taken.toString());
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("panamax: cannot serve the API on " + taken + ": " + taken + " exists already;");
        assertThat(taken).as("left alone").exists();
    }

    @Test
    void apiSendsOneRequestAndPrintsTheAnswer() throws Exception {
        Path socket = dir.resolve("api.sock");
        Path body = Files.writeString(dir.resolve("machine.json"), "{\"vcpu_count\": 2, \"mem_size_mib\": 128}");
        ControlPlane plane = new ControlPlane(config -> config.toBuilder().build(), "9.9.9");
        try (ApiServer _ = ApiServer.start(socket, plane)) {
            CliRun version = panamax("api", "--api-sock", socket.toString(), "GET", "/version");
            assertThat(version.status()).isZero();
            assertThat(version.out().strip()).isEqualTo("{\"firecracker_version\":\"9.9.9\"}");

            CliRun put = panamax("api", "--api-sock", socket.toString(), "put", "/machine-config", "--file", body.toString());
            assertThat(put.status()).as(put.err()).isZero();
            assertThat(put.out()).isEmpty();
            assertThat(panamax("api", "--api-sock", socket.toString(), "GET", "/machine-config").out()).contains("\"vcpu_count\":2");

            CliRun bad = panamax("api", "--api-sock", socket.toString(), "PUT", "/machine-config", "{\"vcpu_count\": 0}");
            assertThat(bad.status()).isEqualTo(2);
            assertThat(bad.err().strip()).isEqualTo("panamax: 400: machine-config.vcpu_count: 0 vCPUs is out of range: a guest has 1 to 254");

            CliRun missing = panamax("api", "--api-sock", socket.toString(), "GET", "/nope");
            assertThat(missing.status()).isEqualTo(2);
            assertThat(missing.err()).startsWith("panamax: 404: there is no resource /nope;");

            assertThat(panamax("api", "--api-sock", socket.toString(), "GET", "vm/config").err())
                    .contains("the resource path must start with '/', like /vm/config, not 'vm/config'");
        }
        CliRun nobody = panamax("api", "--api-sock", socket.toString(), "GET", "/");
        assertThat(nobody.status()).isEqualTo(2);
        assertThat(nobody.err()).startsWith("panamax: cannot reach the API at " + socket).contains("is panamax serve running there?");
    }

    @Test
    void runServesTheApiOfTheVmItBootsAndRemovesTheSocket() throws Exception {
        Path socket = dir.resolve("run.sock");
        CliRun r = panamax("run", "--no-rig", "--console", "none", "--memory", "64M", "--api-sock", socket.toString(),
                "--kernel", TestKernels.resetting(dir).toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.err()).contains("panamax: serving the API on " + socket);
        assertThat(socket).doesNotExist();

        CliRun noDir = panamax("run", "--no-rig", "--console", "none", "--api-sock", dir.resolve("none/run.sock").toString(),
                "--kernel", TestKernels.resetting(dir).toString());
        assertThat(noDir.status()).isEqualTo(2);
        assertThat(noDir.err()).contains("cannot serve the API on " + dir.resolve("none/run.sock") + ": the directory "
                + dir.resolve("none") + " does not exist");
    }

    @Test
    void runServesTheApiOnlyWhereTheVmRunsInThisProcess() throws Exception {
        Path socket = dir.resolve("run.sock");
        CliRun r = panamax("run", "--console", "none", "--memory", "64M", "--api-sock", socket.toString(),
                "--kernel", TestKernels.resetting(dir).toString());
        if (KvmAcceleration.detect().hardware()) {
            assertThat(r.status()).as(r.err()).isZero();
        } else { // the VM would run inside the rig, its socket out of this host's reach
            assertThat(r.status()).isEqualTo(2);
            assertThat(r.err()).contains("--api-sock serves the API from the process that runs the VM")
                    .contains("panamax rig -- COMMAND");
        }
        assertThat(socket).doesNotExist();
    }

    @Test
    void runBootsAConfigFile() throws Exception {
        Path config = Files.writeString(dir.resolve("vm.json"), """
                {"boot-source": {"kernel_image_path": "%s", "boot_args": "quiet"},
                 "machine-config": {"vcpu_count": 2, "mem_size_mib": 64}}
                """.formatted(TestKernels.resetting(dir)));
        CliRun r = panamax("run", "--no-rig", "--console", "none", "--config", config.toString());
        assertThat(r.status()).as(r.err()).isZero();
    }

    @Test
    void runWritesTheLogItsConfigFileAsksFor() throws Exception {
        Path log = dir.resolve("vmm.log");
        Path config = Files.writeString(dir.resolve("vm.json"), """
                {"boot-source": {"kernel_image_path": "%s"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
                 "logger": {"log_path": "%s", "level": "Info", "show_level": true}}
                """.formatted(TestKernels.resetting(dir), log));
        CliRun r = panamax("run", "--no-rig", "--console", "none", "--config", config.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(Files.readString(log)).containsPattern("\\[anonymous-instance:[^:]+:INFO\\] Running Panamax v");

        Files.writeString(config, """
                {"boot-source": {"kernel_image_path": "%s"}, "logger": {"log_path": "%s"}}
                """.formatted(TestKernels.resetting(dir), dir));
        CliRun bad = panamax("run", "--no-rig", "--console", "none", "--config", config.toString());
        assertThat(bad.status()).isEqualTo(2);
        assertThat(bad.err().strip()).isEqualTo("panamax: logger.log_path: cannot open " + dir + " for the log: " + dir
                + " is neither a regular file nor a named pipe");
    }

    @Test
    void runRefusesBadConfigFilesInOneLine() throws Exception {
        Path kernel = TestKernels.resetting(dir);
        Path config = Files.writeString(dir.resolve("vm.json"), """
                {"boot-source": {"kernel_image_path": "%s"},
                 "machine-config": {"vcpu_count": true, "mem_size_mib": 64}}
                """.formatted(kernel));
        assertRefused("machine-config.vcpu_count: expected an integer, not true", "run", "--no-rig", "--config", config.toString());
        Path withDrive = Files.writeString(dir.resolve("drive.json"), """
                {"boot-source": {"kernel_image_path": "%s"},
                 "drives": [{"drive_id": "rootfs", "path_on_host": "%s", "is_root_device": true}]}
                """.formatted(kernel, kernel));
        try (var _ = Images.open(kernel, Images.OpenOptions.readWrite().withLock())) {
            assertRefused("drive rootfs: disk image " + kernel, "run", "--no-rig", "--console", "none", "--config", withDrive.toString());
        }
        assertRefused("--config and --cpus do not go together", "run", "--config", config.toString(), "--cpus", "2");
        assertRefused(dir.resolve("nope.json") + ": cannot read the config file: it does not exist",
                "run", "--config", dir.resolve("nope.json").toString());
    }

    private static void assertRefused(String expected, String... args) {
        CliRun r = panamax(args);
        assertThat(r.status()).as(r.err()).isEqualTo(2);
        assertThat(r.err().strip()).startsWith("panamax: ").contains(expected).doesNotContain("\n");
    }

    @Test
    void theRunStateOfAVmShowsThroughItsApi() throws Exception {
        // run --api-sock: the API of a VM started by its owner, whose pre-boot resources are fixed.
        Path kernel = TestKernels.spinning(dir);
        try (VirtualMachine vm = VirtualMachine.builder().kernel(kernel).memoryMib(64).build();
             ApiServer server = ApiServer.start(dir.resolve("vm.sock"), ControlPlane.forVm(vm,
                     dev.panamax.control.VmConfig.parse("{\"boot-source\": {\"kernel_image_path\": \"" + kernel + "\"}}", "t"), "1"))) {
            ApiClient client = new ApiClient(server.socket());
            assertThat(((Map<?, ?>) client.send("GET", "/", null).json()).get("state")).isEqualTo("Not started");
            ApiClient.Response early = client.send("PATCH", "/vm", "{\"state\": \"Paused\"}");
            assertThat(early.status()).as("refused until the owner starts the VM").isEqualTo(400);
            assertThat(early.faultMessage()).isEqualTo("vm: the VM has not started yet; try again in a moment");
            assertThat(client.send("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").faultMessage())
                    .isEqualTo("InstanceStart: the VM is started already");
            vm.start();
            assertThat(((Map<?, ?>) client.send("GET", "/", null).json()).get("state")).isEqualTo("Running");
            assertThat(client.send("PUT", "/boot-source", "{}").faultMessage())
                    .isEqualTo("boot-source: can only be set before InstanceStart, and the VM has started");
            assertThat(client.send("PATCH", "/vm", "{\"state\": \"Paused\"}").status()).isEqualTo(204);
            assertThat(vm.state()).isEqualTo(VirtualMachine.State.PAUSED);
        }
    }
}
