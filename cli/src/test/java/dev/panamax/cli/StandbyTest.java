package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.rig.WarmRig;
import java.io.ByteArrayInputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The standby JVM the warm rig starts ahead of a run: ready marker, then the run's arguments as its first line. */
class StandbyTest {
    private static Process standby() throws Exception {
        return new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), Standby.class.getName()).redirectErrorStream(true).start();
    }

    @Test
    void itSaysItIsReadyThenRunsTheArgumentsOfItsFirstLineWithTheirStatus() throws Exception {
        Process p = standby();
        try (OutputStream in = p.getOutputStream()) {
            in.write((WarmRig.encodeArgs(List.of("image", "info", "/nonexistent/disk.img")) + "\n").getBytes(StandardCharsets.US_ASCII));
        }
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(out).startsWith(WarmRig.STANDBY_READY).contains("/nonexistent/disk.img");
        assertThat(out).as("the warm-up's usage text went nowhere").doesNotContain("Usage:");
        assertThat(p.exitValue()).as(out).isNotZero();
    }

    @Test
    void theEndOfItsInputBeforeALineEndsItWithZero() throws Exception {
        Process p = standby();
        p.getOutputStream().close();
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8)).isEqualTo(WarmRig.STANDBY_READY);
        assertThat(p.exitValue()).isZero();
    }

    @Test
    void aLineIsReadByteByByteLeavingWhatFollowsToTheRun() throws Exception {
        ByteArrayInputStream in = new ByteArrayInputStream("args\nkeys".getBytes(StandardCharsets.US_ASCII));
        assertThat(Standby.readLine(in)).isEqualTo("args");
        assertThat(new String(in.readAllBytes(), StandardCharsets.US_ASCII)).isEqualTo("keys");
        assertThat(Standby.readLine(new ByteArrayInputStream("no newline".getBytes(StandardCharsets.US_ASCII)))).isNull();
    }
}
