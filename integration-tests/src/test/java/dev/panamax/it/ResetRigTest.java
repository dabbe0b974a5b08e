package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.junit.ExecResult;
import dev.panamax.junit.Guest;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.junit.Reset;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;

/**
 * panamax-junit's fast reset, where real KVM is (the rig here): ten tests of one class, the guest booted
 * once; the first leaves a file in the guest, and each later one starts from the snapshot of the booted
 * guest, so finds none (and leaves one of its own for the next to miss).
 */
@PanamaxTest(reset = Reset.SNAPSHOT)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(1500) // guards against a hang only: the rig's start and the boot come first
class ResetRigTest {
    private static final String MARKER = "/tmp/marker";

    Guest guest;

    @Test
    @Order(1)
    void theFirstTestLeavesAFile() {
        leaveMarker();
        assertThat(guest.exec("cat", MARKER).stdout()).isEqualTo("left by a test\n");
    }

    @RepeatedTest(9)
    @Order(2)
    void everyLaterTestStartsWithoutIt() {
        ExecResult r = guest.exec("sh", "-c", "test -e " + MARKER + " && echo present || echo absent");
        assertThat(r.exitStatus()).as(r.stderr()).isZero();
        assertThat(r.stdout()).isEqualTo("absent\n");
        assertThat(guest.console()).as("the guest booted once, then was restored").containsOnlyOnce("panamax: init reached");
        leaveMarker();
    }

    private void leaveMarker() {
        ExecResult r = guest.exec("sh", "-c", "echo 'left by a test' > " + MARKER);
        assertThat(r.exitStatus()).as(r.stderr()).isZero();
    }
}
