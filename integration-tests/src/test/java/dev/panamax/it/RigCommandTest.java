package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.Panamax;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@code panamax rig -- COMMAND...}: the command's output and exit status, and its timeout. */
@Timeout(300)
class RigCommandTest {

    /** Runs the CLI with stdout captured; returns the exit status and leaves the output in {@link #out}. */
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    private int panamax(String... args) {
        PrintStream saved = System.out;
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        try {
            return Panamax.execute(args);
        } finally {
            System.setOut(saved);
        }
    }

    @Test
    void runsTheCommandInTheRigAndExitsWithItsStatus() {
        assertThat(panamax("rig", "--", "sh", "-c", "echo in $(hostname) at $(pwd); exit 4")).isEqualTo(4);
        assertThat(out.toString(StandardCharsets.UTF_8)).isEqualTo("in rig at " + System.getProperty("user.dir") + "\n");
    }

    @Test
    void aCommandThatOutlivesItsTimeoutEndsWith124() {
        assertThat(panamax("rig", "--timeout", "2s", "--", "sleep", "600")).isEqualTo(124);
    }

    @Test
    void aBadTimeoutIsAUsageErrorBeforeAnyRigStarts() {
        assertThat(panamax("rig", "--timeout", "soon", "--", "true")).isEqualTo(Panamax.EXIT_USAGE);
    }
}
