package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.junit.ExecResult;
import dev.panamax.junit.Guest;
import dev.panamax.junit.PanamaxTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * panamax-junit's first user: one guest booted for the class (where real KVM is: the rig here),
 * given to a field and to a parameter, runs each test's commands through its agent.
 */
@PanamaxTest
@Timeout(1500) // guards against a hang only: the rig's start and the boot come first
class GuestLibraryRigTest {
    Guest guest;

    @Test
    void aCommandsOutputComesBack() {
        ExecResult r = guest.exec("sh", "-c", "uname -s; echo \"$1\"", "sh", "two words");
        assertThat(r.exitStatus()).as(r.stderr()).isZero();
        assertThat(r.stdout()).isEqualTo("Linux\ntwo words\n");
        assertThat(r.stderr()).isEmpty();
        assertThat(r.timedOut()).isFalse();
        // However many tests ran before this one, the guest booted once.
        assertThat(guest.console()).containsOnlyOnce("panamax: init reached");
    }

    @Test
    void aFailingCommandsStatusComesBackFaithfully(Guest sameGuest) {
        assertThat(sameGuest).isSameAs(guest);
        ExecResult one = sameGuest.exec("false");
        assertThat(one.exitStatus()).isEqualTo(1);
        assertThat(one.succeeded()).isFalse();
        ExecResult answer = sameGuest.exec("sh", "-c", "exit 42");
        assertThat(answer.exitStatus()).isEqualTo(42);
        assertThat(answer.timedOut()).isFalse();
    }

    @Test
    void stderrStaysApartFromStdout() {
        ExecResult r = guest.exec("sh", "-c", "echo out; echo err >&2; echo more-out; ls /no-such-dir");
        assertThat(r.exitStatus()).isNotZero();
        assertThat(r.stdout()).isEqualTo("out\nmore-out\n");
        assertThat(r.stderr()).startsWith("err\n").contains("no-such-dir").doesNotContain("out\n");
    }
}
