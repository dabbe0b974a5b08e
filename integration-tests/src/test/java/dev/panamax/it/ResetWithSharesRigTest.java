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
 * Fast reset of a class with a shared folder, where real KVM is (the rig here): the snapshot carries the
 * guest's FUSE session, so each restored guest goes on reading the folder it mounted at boot (a server
 * without the session would answer its first request EIO, before INIT), while what a test left in the
 * guest's own files is gone.
 */
@PanamaxTest(reset = Reset.SNAPSHOT, shares = "src/test/resources/reset-share,tag=data,readonly")
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(1500) // guards against a hang only: the rig's start and the boot come first
class ResetWithSharesRigTest {
    private static final String MARKER = "/tmp/marker";

    Guest guest;

    @Test
    @Order(1)
    void theFirstTestReadsTheFolderAndLeavesAFileInTheGuest() {
        assertThat(guest.exec("cat", "/mnt/data/hello.txt").stdout()).isEqualTo("kept on the host\n");
        ExecResult r = guest.exec("sh", "-c", "echo 'left by a test' > " + MARKER);
        assertThat(r.exitStatus()).as(r.stderr()).isZero();
    }

    @RepeatedTest(3)
    @Order(2)
    void everyRestoredGuestStillReadsTheFolderAndFindsNoFileLeft() {
        ExecResult r = guest.exec("sh", "-c", "test -e " + MARKER + " && echo present || echo absent; ls /mnt/data; cat /mnt/data/hello.txt");
        assertThat(r.exitStatus()).as(r.stderr()).isZero();
        assertThat(r.stdout()).isEqualTo("absent\nhello.txt\nkept on the host\n");
        assertThat(guest.console()).as("the guest booted once, then was restored").containsOnlyOnce("panamax: init reached");
        ExecResult leave = guest.exec("sh", "-c", "echo 'left by a test' > " + MARKER);
        assertThat(leave.exitStatus()).as(leave.stderr()).isZero();
    }
}
