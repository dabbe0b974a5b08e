package dev.panamax.it;

import static dev.panamax.it.PanamaxBootTest.tinyGuest;
import static dev.panamax.it.ScriptOutput.fact;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.Panamax;
import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RunResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The tiny guest with an entropy device reads 64 bytes from {@code /dev/hwrng} (virtio-rng, filled
 * from the host's getrandom), then crashes its kernel ({@code echo c > /proc/sysrq-trigger}); the
 * kernel's pvpanic driver reports the panic and {@code run} ends with the panic status, saying it came
 * through pvpanic. Where real KVM is (the rig here). NEEDS THE RIG: not run by the unit-test build.
 */
@PanamaxTest
@Timeout(900)
class EntropyPanicRigTest {

    @Test
    void theGuestReadsHwrngAndItsPanicEndsRunThroughPvpanic(RealKvm kvm) {
        String guest = "echo rng-current=$(cat /sys/class/misc/hw_random/rng_current);"
                + " echo hwrng=$(head -c 64 /dev/hwrng | od -An -tx1 | tr -d ' \\n');"
                + " echo c > /proc/sysrq-trigger; echo still-running";
        List<String> args = new ArrayList<>(List.of("run", "--no-rig", "--timeout", "300", "--entropy=bw=64K,ops=100"));
        args.addAll(List.of(tinyGuest(GuestImages.defaultVmlinux(), "--cmdline", "quiet panamax.run=\"" + guest + "\"")));
        String run = kvm.javaShellCommand(Panamax.class.getName(), args);
        String script = String.join("\n",
                "log=$(mktemp)",
                run + " > $log 2>&1",
                "echo vm-status=$?",
                "sed 's/^/guest: /' $log; rm -f $log");

        RunResult r = kvm.run(List.of("sh", "-c", script), Duration.ofSeconds(600), System.out);

        String out = r.output();
        assertThat(r.timedOut()).as(out).isFalse();
        assertThat(out).contains(GuestImages.INIT_MARKER);
        assertThat(fact(out, "rng-current=(\\S+)")).as("the guest's hwrng is the virtio device").startsWith("virtio_rng");
        String bytes = fact(out, "hwrng=([0-9a-f]*)");
        assertThat(bytes).as("64 bytes, in hex").hasSize(128).isNotEqualTo("0".repeat(128));
        assertThat(out).doesNotContain("still-running");
        assertThat(out).as("the panic, reported through pvpanic, with the console's panic line").containsPattern(
                "panamax: the guest failed: guest panic: the guest kernel reported a panic through pvpanic: .*Kernel panic - not syncing: sysrq");
        assertThat(fact(out, "vm-status=(\\d+)")).as("run's status for a crashed guest").isEqualTo("1");
    }
}
