package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/** {@code run}'s exit status with the built-in initramfs: the command's own, unless the VM failed or timed out. */
class RunStatusTest {
    @Test
    void anOrderlyEndTakesTheStatusTheGuestReported() {
        assertThat(RunCommand.withReportedStatus(0, OptionalInt.of(3))).isEqualTo(3);
        assertThat(RunCommand.withReportedStatus(0, OptionalInt.of(0))).isZero();
        assertThat(RunCommand.withReportedStatus(0, OptionalInt.of(255))).isEqualTo(255);
    }

    @Test
    void aGuestThatReportedNothingKeepsTheVmStatus() {
        assertThat(RunCommand.withReportedStatus(0, OptionalInt.empty())).isZero();
        assertThat(RunCommand.withReportedStatus(1, OptionalInt.empty())).isEqualTo(1);
    }

    @Test
    void aCrashOrTimeoutOutweighsTheReport() {
        assertThat(RunCommand.withReportedStatus(1, OptionalInt.of(0))).isEqualTo(1);
        assertThat(RunCommand.withReportedStatus(124, OptionalInt.of(0))).isEqualTo(124);
    }
}
