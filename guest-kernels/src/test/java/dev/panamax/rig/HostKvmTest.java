package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** HostKvm runs commands as children of this JVM; KVM itself plays no part in what is tested here. */
class HostKvmTest {
    private final HostKvm host = new HostKvm();

    @Test
    void outputIsStreamedAndKeptAndTheStatusComesBack() {
        ByteArrayOutputStream echo = new ByteArrayOutputStream();
        RunResult r = host.run(List.of("sh", "-c", "echo out; echo err >&2; exit 3"), Duration.ofSeconds(30), echo);
        assertThat(r.exitStatus()).isEqualTo(3);
        assertThat(r.timedOut()).isFalse();
        assertThat(r.output()).contains("out\n", "err\n");
        assertThat(echo.toString(StandardCharsets.UTF_8)).isEqualTo(r.output());
    }

    @Test
    void aHangingCommandAndItsChildrenAreKilledAtTheTimeout() {
        RunResult r = host.run(List.of("sh", "-c", "sleep 1003 & sleep 1004"), Duration.ofMillis(500));
        assertThat(r.timedOut()).isTrue();
        assertThat(r.exitStatus()).isEqualTo(137);
        assertThat(r.elapsed()).isLessThan(Duration.ofSeconds(10));
        assertThat(ProcessHandle.allProcesses().map(p -> p.info().commandLine().orElse(""))
                .filter(c -> c.contains("sleep 1003") || c.contains("sleep 1004"))).isEmpty();
    }
}
