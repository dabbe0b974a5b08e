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
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The balloon where real KVM is (the rig here): a 256 MiB guest touches 160 MiB and frees it, so
 * its free pages are resident in the VMM; then the API inflates the balloon to 128 MiB ({@code
 * PATCH /balloon} with curl on the API socket) and deflates it again. The script reads the VMM's
 * {@code VmRSS} from {@code /proc/PID/status} before, inflated and deflated; the guest prints its
 * {@code MemTotal} and {@code MemAvailable} every second until the script, done, shuts it down
 * ({@code SendCtrlAltDel}). NEEDS THE RIG: not run by the unit-test build.
 */
@PanamaxTest
@Timeout(900)
class BalloonRigTest {
    private static final int GUEST_MIB = 256;
    private static final int BALLOON_MIB = 128;

    @Test
    void inflatingGivesTheGuestsPagesBackToTheHostAndDeflatingReturnsThem(RealKvm kvm) {
        String guest = "dd if=/dev/zero of=/fill bs=1M count=160 2>/dev/null; rm /fill; echo guest-filled;"
                + " i=0; while [ $i -lt 200 ]; do echo mem $(grep MemTotal /proc/meminfo) $(grep MemAvailable /proc/meminfo);"
                + " i=$((i+1)); sleep 1; done; echo guest-done";
        List<String> args = new ArrayList<>(List.of("run", "--no-rig", "--timeout", "400", "--memory", GUEST_MIB + "M", "--balloon",
                "0,stats=1", "--api-sock", "/tmp/pnx-balloon.sock"));
        args.addAll(List.of(tinyGuest(GuestImages.defaultVmlinux(), "--cmdline", "quiet panamax.run=\"" + guest + "\"")));
        String run = kvm.javaShellCommand(Panamax.class.getName(), args);
        String script = String.join("\n",
                "sock=/tmp/pnx-balloon.sock; rm -f $sock",
                "log=$(mktemp)",
                run + " > $log 2>&1 &",
                "vm=$!",
                "get() { curl -s --unix-socket $sock \"http://localhost$1\"; }",
                "patch() { curl -s --unix-socket $sock -X PATCH -H 'Content-Type: application/json' -d \"$2\" \"http://localhost$1\"; }",
                "rss() { while read -r key value unit; do [ \"$key\" = VmRSS: ] && echo $value; done < /proc/$vm/status; }",
                // Wait up to $2 seconds for the guest's console, or the balloon's statistics, to show $1.
                "waitlog() { n=0; until grep -q \"$1\" $log || [ $n -ge $2 ]; do n=$((n+1)); sleep 1; done; }",
                "waitapi() { n=0; until get /balloon/statistics | grep -q \"$1\" || [ $n -ge $2 ]; do n=$((n+1)); sleep 1; done; }",
                "waitlog guest-filled 240",
                "sleep 2",
                "echo rss-before-kib=$(rss)",
                "patch /balloon '{\"amount_mib\": " + BALLOON_MIB + "}'",
                "waitapi '\"actual_mib\":" + BALLOON_MIB + "' 120",
                "sleep 3",
                "echo rss-inflated-kib=$(rss)",
                "echo stats=$(get /balloon/statistics)",
                "echo balloon=$(get /balloon)",
                "patch /balloon '{\"amount_mib\": 0}'",
                "waitapi '\"actual_mib\":0,' 120",
                "sleep 3",
                "echo rss-deflated-kib=$(rss)",
                "echo deflated-stats=$(get /balloon/statistics)",
                // Measured: the guest, sampling for up to 200 s, shuts down now.
                "curl -s --unix-socket $sock -X PUT -H 'Content-Type: application/json' -d '{\"action_type\": \"SendCtrlAltDel\"}'"
                        + " http://localhost/actions",
                "wait $vm; echo vm-status=$?",
                "sed 's/^/guest: /' $log; rm -f $log");

        RunResult r = kvm.run(List.of("sh", "-c", script), Duration.ofSeconds(600), System.out);

        String out = r.output();
        assertThat(r.timedOut()).as(out).isFalse();
        assertThat(out).contains("guest: " + GuestImages.INIT_MARKER).contains("guest-filled", "vm-status=0");
        long before = Long.parseLong(fact(out, "rss-before-kib=(\\d+)"));
        long inflated = Long.parseLong(fact(out, "rss-inflated-kib=(\\d+)"));
        assertThat(before - inflated).as("the VMM's VmRSS fell by at least half the balloon: its pages left the host process (KiB)")
                .isGreaterThanOrEqualTo(BALLOON_MIB / 2 * 1024L);
        assertThat(out).contains("\"target_mib\":" + BALLOON_MIB, "\"actual_mib\":" + BALLOON_MIB, "\"total_memory\":",
                "\"available_memory\":");
        assertThat(fact(out, "balloon=(.*)")).contains("\"amount_mib\":" + BALLOON_MIB);

        List<long[]> samples = Pattern.compile("mem MemTotal: (\\d+) kB MemAvailable: (\\d+) kB").matcher(out).results()
                .map(m -> new long[] {Long.parseLong(m.group(1)), Long.parseLong(m.group(2))}).toList();
        assertThat(samples).as("the guest's memory samples").hasSizeGreaterThan(5);
        long firstTotal = samples.getFirst()[0];
        long firstAvailable = samples.getFirst()[1];
        long lowestTotal = samples.stream().mapToLong(s -> s[0]).min().orElseThrow();
        long lowestAvailable = samples.stream().mapToLong(s -> s[1]).min().orElseThrow();
        assertThat(firstTotal - lowestTotal).as("the guest's MemTotal fell by the balloon (KiB)").isGreaterThanOrEqualTo(120 * 1024L);
        assertThat(firstAvailable - lowestAvailable).as("the guest's MemAvailable fell (KiB)").isGreaterThanOrEqualTo(100 * 1024L);
        assertThat(samples.getLast()[0]).as("MemTotal after the deflate").isGreaterThanOrEqualTo(firstTotal - 4 * 1024L);
        assertThat(out).contains("deflated-stats={\"target_pages\":0,\"actual_pages\":0,");
    }
}
