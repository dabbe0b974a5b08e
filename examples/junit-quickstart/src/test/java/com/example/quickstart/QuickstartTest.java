package com.example.quickstart;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.junit.ExecResult;
import dev.panamax.junit.Guest;
import dev.panamax.junit.PanamaxTest;
import org.junit.jupiter.api.Test;

/**
 * Three boot tests sharing one tiny Linux guest, booted for the class: where the host's KVM is
 * hardware-fast on this host, else inside Panamax's nested KVM rig, without the test knowing.
 * The project's guest-data directory is mounted read-only in the guest at /mnt/data.
 */
@PanamaxTest(memoryMib = 256, shares = "guest-data,tag=data,readonly")
class QuickstartTest {
    Guest guest;

    @Test
    void aCommandsOutputComesBack() {
        ExecResult r = guest.exec("echo", "hello", "from the guest");
        assertThat(r.exitStatus()).as(r.stderr()).isZero();
        assertThat(r.stdout()).isEqualTo("hello from the guest\n");
        assertThat(r.stderr()).isEmpty();
    }

    @Test
    void aFailingCommandsExitStatusComesBack() {
        ExecResult r = guest.exec("sh", "-c", "echo 'not today' >&2; exit 3");
        assertThat(r.exitStatus()).isEqualTo(3);
        assertThat(r.succeeded()).isFalse();
        assertThat(r.stderr()).isEqualTo("not today\n");
        assertThat(r.stdout()).isEmpty();
    }

    @Test
    void aFileFromASharedFolderIsReadInTheGuest() {
        ExecResult r = guest.exec("cat", "/mnt/data/greeting.txt");
        assertThat(r.exitStatus()).as(r.stderr()).isZero();
        assertThat(r.stdout()).isEqualTo("Hello from the host.\n");
    }
}
