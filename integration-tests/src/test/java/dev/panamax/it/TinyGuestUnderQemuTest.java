package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RunResult;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The tiny guest boots under QEMU with KVM (the peer VMM of the benchmarks) where real KVM is: on
 * this kind of host, as L2 inside the rig. /init runs panamax.run and the guest's end ends QEMU.
 */
@PanamaxTest
@Timeout(600) // the first run builds the kernel (about 5 minutes on 2 cores)
class TinyGuestUnderQemuTest {

    private static RunResult boot(RealKvm kvm, java.nio.file.Path kernel, String run, String exit) {
        String cmdline = GuestImages.commandLine(run, exit);
        return kvm.run(QemuPeer.bootCommand(kernel, GuestImages.defaultInitramfs(), cmdline, 256), Duration.ofSeconds(120), System.out);
    }

    @Test
    void pvhVmlinuxBootsToInitRunsTheCommandAndRebootsThroughTheI8042(RealKvm kvm) {
        RunResult r = boot(kvm, GuestImages.defaultVmlinux(), "echo hello from the guest on $(grep -c ^processor /proc/cpuinfo) cpu; exit 5",
                "reboot");
        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.exitStatus()).as("QEMU's exit status").isZero();
        assertThat(r.output()).contains(GuestImages.INIT_MARKER, "hello from the guest on 1 cpu");
        assertThat(GuestImages.exitStatus(r.output())).hasValue(5);
    }

    @Test
    void bzImageBootsToo(RealKvm kvm) {
        RunResult r = boot(kvm, GuestImages.defaultKernel(), "test -c /dev/console && uname -r", "reboot");
        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.exitStatus()).as("QEMU's exit status").isZero();
        assertThat(r.output()).contains(GuestImages.INIT_MARKER).containsPattern("(?m)^6\\.1\\.\\d+.*$");
        assertThat(GuestImages.exitStatus(r.output())).hasValue(0);
    }
}
