package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.guest.ExecAgent;
import dev.panamax.rig.HostKvm;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A {@link Guest} end to end without KVM: the test JVM's side, the wire, a server process (started
 * as the extension starts one, with {@code RealKvm.runJava}) and the real agent, with the agent loop
 * on this host in place of a guest ({@link HostAgentServer}).
 */
@Timeout(180) // guards against a hang only
class GuestConnectionTest {
    private static final Duration BOOT = Duration.ofSeconds(120);
    @TempDir static Path tmp;
    private static Path agent;
    private static GuestConnection guest;

    @BeforeAll
    static void start() throws IOException {
        agent = ExecAgent.compile(Files.createDirectories(tmp.resolve("build")), tmp.resolve("panamax-agent"));
        guest = GuestConnection.start(new HostKvm(), "this host", HostAgentServer.class.getName(), List.of(agent.toString()),
                Duration.ofSeconds(60), BOOT);
    }

    @AfterAll
    static void stop() {
        guest.close();
    }

    @Test
    void aCommandsOutputStatusAndStreamsComeBack() {
        ExecResult r = guest.exec("sh", "-c", "printf '[%s]\\n' \"$@\"; echo to-stderr >&2; exit 42", "sh", "two words", "it's");
        assertThat(r.exitStatus()).as(r.stderr()).isEqualTo(42);
        assertThat(r.stdout()).isEqualTo("[two words]\n[it's]\n");
        assertThat(r.stderr()).isEqualTo("to-stderr\n");
        assertThat(r.timedOut()).isFalse();
        assertThat(r.succeeded()).isFalse();
        assertThat(guest.exec("false").exitStatus()).isEqualTo(1);
        assertThat(guest.exec("true").succeeded()).isTrue();
    }

    @Test
    void aCommandOutlivingItsTimeoutGives124AndTheGuestGoesOn() {
        ExecResult r = guest.exec(Duration.ofSeconds(1), List.of("sh", "-c", "echo started; sleep 600"));
        assertThat(r.timedOut()).isTrue();
        assertThat(r.exitStatus()).isEqualTo(ExecResult.TIMED_OUT);
        assertThat(r.stdout()).isEqualTo("started\n");
        assertThat(guest.exec("echo", "next").stdout()).isEqualTo("next\n");
    }

    @Test
    void aResetHandsTheNextCommandToAnAgentOfTheNewPool() {
        assertThat(guest.exec("true").succeeded()).isTrue();
        assertThat(guest.changedSinceReset()).isTrue();
        guest.reset();
        assertThat(guest.changedSinceReset()).isFalse();
        assertThat(guest.console()).contains("reset "); // the server's reset ran (the old agent's connection closed under it)
        assertThat(guest.exec("echo", "after").stdout()).isEqualTo("after\n");
        assertThat(guest.changedSinceReset()).isTrue();
    }

    @Test
    void theConsoleAndTheServersOwnLinesAreKept() {
        assertThat(guest.console()).contains("host agent loop started");
        assertThat(guest.serverLogTail(50)).contains("a line on the server's stderr");
        assertThat(guest.where()).isEqualTo("this host");
    }

    @Test
    void aGuestThatEndsFailsItsCommandWithTheReasonAndTheConsole() {
        GuestConnection ending = GuestConnection.start(new HostKvm(), "this host", EndingServer.class.getName(), List.of(),
                Duration.ofSeconds(60), BOOT);
        try {
            assertThatThrownBy(() -> ending.exec("true")).isInstanceOf(GuestException.class)
                    .hasMessageContaining("the guest ended: triple fault (test)").hasMessageContaining("Kernel panic - not syncing: test");
            assertThat(ending.alive()).isFalse();
            assertThatThrownBy(() -> ending.exec("true")).isInstanceOf(GuestException.class).hasMessageContaining("triple fault");
        } finally {
            ending.close();
        }
    }

    @Test
    void aServerThatCannotStartIsABootFailureWithWhatItSaid() {
        assertThatThrownBy(() -> GuestConnection.start(new HostKvm(), "this host", GuestServer.class.getName(), List.of("cpus=two"),
                Duration.ofSeconds(60), BOOT)).isInstanceOf(GuestException.class).hasMessageContaining("'cpus=two': not a whole number");
    }

    @Test
    void aServerThatSaysNothingIsGivenUpOnAsSilentNotAsSlow() {
        assertThatThrownBy(() -> GuestConnection.start(new HostKvm(), "this host", SilentServer.class.getName(), List.of(),
                Duration.ofSeconds(60), Duration.ofSeconds(100), Duration.ofSeconds(2)))
                .isInstanceOf(GuestConnection.StuckPlaceException.class).hasMessageContaining("said nothing within 2 s");
    }
}
