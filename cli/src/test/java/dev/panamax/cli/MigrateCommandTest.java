package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.api.Drive;
import dev.panamax.api.MigrationOptions;
import dev.panamax.api.MigrationStatus;
import dev.panamax.api.VirtualMachine;
import dev.panamax.boot.SyntheticKernels;
import dev.panamax.control.ApiClient;
import dev.panamax.control.ApiFault;
import dev.panamax.control.ApiServer;
import dev.panamax.control.ControlPlane;
import dev.panamax.control.VmConfig;
import dev.panamax.rig.UsesKvm;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code panamax migrate} and the REST API's migration resources, end to end in this JVM on KVM:
 * a VM behind an API socket moves to a VMM that {@code PUT /migration/receive} made wait, whose API
 * then serves it; a migration that cannot happen ends with status 1 and the guest running on.
 */
@UsesKvm
class MigrateCommandTest {
    @TempDir Path dir;
    private VirtualMachine source;
    private ControlPlane destination;
    private ApiServer sourceApi;

    @BeforeEach
    void startASourceBehindAnApiSocket() throws IOException {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImageRunning(SyntheticKernels.pageSweep(0x2001000)));
        Path disk = Files.write(dir.resolve("disk.img"), new byte[1 << 20]);
        source = VirtualMachine.builder().kernel(kernel).memoryMib(64).drive(new Drive("data", disk, false, false)).build();
        source.start();
        sourceApi = ApiServer.start(dir.resolve("source.sock"), ControlPlane.forVm(source, VmConfig.of(source.configuration(), false), "1.0"));
        destination = new ControlPlane(config -> {
            throw new AssertionError("the destination builds no VM of its own");
        }, "1.0");
    }

    @AfterEach
    void closeAll() throws IOException {
        sourceApi.close();
        destination.close();
        source.close();
    }

    private static byte[] json(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void theVmBehindAnApiSocketMovesToTheVmmThatAwaitsIt() throws Exception {
        String address = "unix:" + dir.resolve("migration.sock");
        assertThat(destination.handle("PUT", "/migration/receive", json("{\"address\": \"" + address + "\"}")).status()).isEqualTo(204);
        assertThat(destination.handle("GET", "/migration", null).body()).containsEntry("phase", "receiving").containsEntry("address", address);

        CliRun run = CliRun.panamax("migrate", "--api-sock", dir.resolve("source.sock").toString(), "--to", address);

        assertThat(run.status()).as(run.err()).isZero();
        assertThat(run.err()).contains("panamax: migrated to " + address).contains("the guest stood still");
        assertThat(source.awaitExit(Duration.ofSeconds(10))).get().extracting(VirtualMachine.Exit::reason)
                .isEqualTo(VirtualMachine.ExitReason.MIGRATED);
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!"Running".equals(destination.handle("GET", "/", null).body().get("state"))) {
            assertThat(System.nanoTime()).as("the destination's VM running").isLessThan(deadline);
            Thread.sleep(20);
        }
        Map<String, Object> config = destination.handle("GET", "/vm/config", null).body();
        assertThat((List<?>) config.get("drives")).hasSize(1).first().asString().contains(dir.resolve("disk.img").toString());
        assertThat(destination.handle("GET", "/migration", null).body()).containsEntry("role", "destination");
        destination.awaitStarted().close();
    }

    /** A VMM ends with its VM: its API waits (a few seconds at most) for a client to learn that the VM moved away. */
    @Test
    void theSourcesApiStaysUntilAClientHasReadThatTheVmMovedAway() throws Exception {
        String address = "unix:" + dir.resolve("migration.sock");
        assertThat(destination.handle("PUT", "/migration/receive", json("{\"address\": \"" + address + "\"}")).status()).isEqualTo(204);
        assertThat(source.migrate(MigrationOptions.to(address)).phase()).isEqualTo(MigrationStatus.Phase.COMPLETED);

        Thread closing = Thread.ofPlatform().start(sourceApi::close);
        closing.join(Duration.ofMillis(500));
        assertThat(closing.isAlive()).as("the API closing before anyone read how the migration ended").isTrue();
        ApiClient.Response answer = new ApiClient(dir.resolve("source.sock")).send("GET", "/migration", null);
        assertThat(answer.body()).contains("\"phase\":\"completed\"");
        closing.join(Duration.ofSeconds(30));
        assertThat(closing.isAlive()).isFalse();
        assertThat(dir.resolve("source.sock")).doesNotExist();
        destination.awaitStarted().close();
    }

    @Test
    void aMigrationToNobodyEndsWithStatusOneAndTheGuestRunsOn() {
        CliRun run = CliRun.panamax("migrate", "--api-sock", dir.resolve("source.sock").toString(), "--to",
                "unix:" + dir.resolve("nobody.sock"));
        assertThat(run.status()).isEqualTo(1);
        assertThat(run.err()).contains("cannot reach the destination").contains("the guest runs on here");
        assertThat(source.state()).isEqualTo(VirtualMachine.State.RUNNING);
    }

    @Test
    void malformedMigrationRequestsAreRefused() {
        // The plane throws a client's fault; the server answers it with 400 and the message.
        assertThatThrownBy(() -> destination.handle("PUT", "/migration/receive", json("{\"address\": \"ftp:x\"}")))
                .isInstanceOf(ApiFault.BadRequest.class).hasMessage("migration/receive.address: 'ftp:x' is not a migration address:"
                        + " use tcp:HOST:PORT or unix:PATH");
        assertThatThrownBy(() -> destination.handle("PUT", "/migration/receive", json("{\"address\": \"tcp:h:99999\"}")))
                .isInstanceOf(ApiFault.BadRequest.class).hasMessageContaining("the port must be a number from 0 to 65535");
        assertThatThrownBy(() -> destination.handle("GET", "/migration", null)).isInstanceOf(ApiFault.BadRequest.class)
                .hasMessageContaining("there is no VM and none is awaited");
        CliRun run = CliRun.panamax("migrate", "--api-sock", dir.resolve("source.sock").toString(), "--to", "tcp:nohost");
        assertThat(run.status()).isNotZero();
        assertThat(run.err()).contains("has no port");
        run = CliRun.panamax("migrate", "--api-sock", dir.resolve("source.sock").toString(), "--to", "unix:/x", "--downtime-ms", "0");
        assertThat(run.err()).contains("downtime_ms").contains("out of range");
        assertThat(source.state()).isEqualTo(VirtualMachine.State.RUNNING);
    }
}
