package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.Panamax;
import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RigImages;
import dev.panamax.rig.RunResult;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Panamax boots real Linux guests with {@code panamax run} where real KVM is: directly on a host
 * with hardware virtualization, else inside the nested rig (on this kind of host). Each test is one
 * boot; the guest's /init runs {@code panamax.run} and reboots, which ends the VM.
 */
@PanamaxTest
@Timeout(900) // the first run builds the kernel (5-10 minutes on 2 cores)
class PanamaxBootTest {
    private static final Duration BOOT_TIMEOUT = Duration.ofSeconds(240);

    /** Runs {@code panamax run --no-rig} there with {@code args}; {@code run} goes to /init unless null. */
    static RunResult panamaxRun(RealKvm kvm, String run, String... args) {
        List<String> argv = new ArrayList<>(List.of("run", "--no-rig", "--timeout", "180"));
        argv.addAll(List.of(args));
        if (run != null) {
            argv.addAll(List.of("--cmdline", "quiet panamax.run=\"" + run + "\""));
        }
        return kvm.runJava(Panamax.class.getName(), argv, BOOT_TIMEOUT, System.out);
    }

    static String[] tinyGuest(Path kernel, String... more) {
        List<String> args = new ArrayList<>(List.of("--kernel", kernel.toString(), "--initrd", GuestImages.defaultInitramfs().toString()));
        args.addAll(List.of(more));
        return args.toArray(String[]::new);
    }

    @Test
    void vmlinuxBootsThroughPvhWithTwoVcpusAndTheCommandLineIntact(RealKvm kvm) {
        RunResult r = panamaxRun(kvm, "cat /proc/cmdline; echo cpus=$(grep -c ^processor /proc/cpuinfo) reboot-force=$(cat /sys/kernel/reboot/force); exit 3",
                tinyGuest(GuestImages.defaultVmlinux(), "--cpus", "2", "--memory", "256M", "--boot-time"));

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).as("/init ends a reboot with /sys/kernel/reboot/force set, which the kernel has")
                .contains(GuestImages.INIT_MARKER, "cpus=2 reboot-force=0");
        assertThat(r.output()).as("the kernel saw Panamax's defaults and the user's part, in order")
                .contains("console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run=");
        assertThat(GuestImages.exitStatus(r.output())).hasValue(3);
        assertThat(r.exitStatus()).as("the guest's reboot ends the VM cleanly, and run ends with the command's status").isEqualTo(3);
        assertThat(r.output()).as("/init wrote the boot-timer port")
                .containsPattern("panamax: guest user space reached \\d+ ms after process start; VMM memory \\d+ MiB");
        Matcher guest = Pattern.compile("minus (\\d+) MiB of guest RAM resident").matcher(r.output());
        assertThat(guest.find()).as(r.output()).isTrue();
        assertThat(Integer.parseInt(guest.group(1))).as("a booted kernel has touched some of its 256 MiB").isBetween(1, 256);
    }

    @Test
    void bzImageBootsThroughThe64BitBootProtocol(RealKvm kvm) {
        RunResult r = panamaxRun(kvm, "uname -r", tinyGuest(GuestImages.defaultKernel()));

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).contains(GuestImages.INIT_MARKER).containsPattern("(?m)^6\\.1\\.\\d+");
        assertThat(r.exitStatus()).as(r.output()).isZero();
    }

    @Test
    void vmlinuxBootsThroughThe64BitEntryToo(RealKvm kvm) {
        RunResult r = panamaxRun(kvm, "true", tinyGuest(GuestImages.defaultVmlinux(), "--boot-protocol", "LINUX64"));

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).contains(GuestImages.INIT_MARKER);
        assertThat(GuestImages.exitStatus(r.output())).hasValue(0);
        assertThat(r.exitStatus()).as(r.output()).isZero();
    }

    @Test
    void aKernelPanicEndsTheVmWithAFailureStatus(RealKvm kvm) {
        // /bin/false as init exits at once, and the kernel panics: "Attempted to kill init!"
        RunResult r = panamaxRun(kvm, null, tinyGuest(GuestImages.defaultVmlinux(), "--cmdline", "rdinit=/bin/false"));

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).contains("Kernel panic - not syncing");
        assertThat(r.exitStatus()).isEqualTo(1);
        // The tiny kernel's pvpanic driver reports the panic: the exit reason comes from the device, not from the console.
        assertThat(r.output()).contains("panamax: the guest failed: guest panic: the guest kernel reported a panic through pvpanic");
    }

    @Test
    void theStockDebianKernelBootsWithTheTinyInitramfs(RealKvm kvm) {
        Path debianKernel = RigImages.ensure().kernel();
        RunResult r = panamaxRun(kvm, "uname -r", tinyGuest(debianKernel, "--memory", "512M", "--cpus", "2"));

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).contains(GuestImages.INIT_MARKER).containsPattern("(?m)^6\\.1\\.\\d+-\\d+-amd64");
        assertThat(r.exitStatus()).as(r.output()).isZero();
    }
}
