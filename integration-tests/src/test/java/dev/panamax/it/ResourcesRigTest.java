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
 * A guest on 2 MiB huge pages with its vCPUs and I/O threads pinned, where real KVM is (the rig
 * here, whose kernel reserves the pages: {@code echo N > /proc/sys/vm/nr_hugepages}, put back after).
 * While the guest runs, the script samples the pool's free and reserved pages and every VMM
 * thread's {@code Cpus_allowed_list} from {@code /proc/PID/task}. NEEDS THE RIG: not run by the
 * unit-test build.
 */
@PanamaxTest
@Timeout(900)
class ResourcesRigTest {
    private static final String POOL = "/sys/kernel/mm/hugepages/hugepages-2048kB";
    private static final int GUEST_MIB = 128;
    private static final int GUEST_PAGES = GUEST_MIB / 2;

    @Test
    void aGuestBootsOnHugePagesWithItsThreadsPinned(RealKvm kvm) {
        String guest = "grep MemTotal /proc/meminfo; head -c 1048576 /dev/vda > /dev/null; echo guest-read-disk; sleep 15; echo guest-done";
        String run = command(kvm, List.of("run", "--no-rig", "--timeout", "300", "--memory", GUEST_MIB + "M,hugepages=2M",
                "--cpus", "2,affinity=0@[1],1@[0],io@[0]", "--disk", "/tmp/pnx-pin.img"),
                tinyGuest(GuestImages.defaultVmlinux(), "--cmdline", "quiet panamax.run=\"" + guest + "\""));
        String script = String.join("\n",
                "knob=/proc/sys/vm/nr_hugepages",
                "before=$(cat $knob)",
                "echo $((before + " + (GUEST_PAGES + 16) + ")) > $knob",
                "echo pool-available-before=$(( $(cat " + POOL + "/free_hugepages) - $(cat " + POOL + "/resv_hugepages) ))",
                "dd if=/dev/zero of=/tmp/pnx-pin.img bs=1M count=8 2>/dev/null",
                "log=$(mktemp)",
                run + " > $log 2>&1 &",
                "vm=$!",
                "while kill -0 $vm 2>/dev/null; do",
                "  echo sample-available=$(( $(cat " + POOL + "/free_hugepages) - $(cat " + POOL + "/resv_hugepages) ))",
                // Shell builtins only: a process per thread per sample took longer under the rig's TCG
                // than the guest lived, and the sampler never saw the I/O threads.
                "  for t in /proc/$vm/task/*; do",
                "    name=; cpus=; read -r name < $t/comm 2>/dev/null",
                "    while read -r key value; do [ \"$key\" = Cpus_allowed_list: ] && cpus=$value; done < $t/status 2>/dev/null",
                "    case $name in vcpu-*|virtio-*) echo \"thread $name $cpus\";; esac",
                "  done | sort -u",
                "  sleep 1",
                "done",
                "wait $vm; echo vm-status=$?",
                "echo $before > $knob",
                "rm -f /tmp/pnx-pin.img",
                "sed 's/^/guest: /' $log; rm -f $log");

        RunResult r = kvm.run(List.of("sh", "-c", script), Duration.ofSeconds(600), System.out);

        String out = r.output();
        assertThat(r.timedOut()).as(out).isFalse();
        assertThat(out).contains("guest: " + GuestImages.INIT_MARKER).contains("guest-read-disk", "guest-done", "vm-status=0");
        long before = Long.parseLong(fact(out, "pool-available-before=(\\d+)"));
        long lowest = Pattern.compile("sample-available=(-?\\d+)").matcher(out).results()
                .mapToLong(m -> Long.parseLong(m.group(1))).min().orElseThrow();
        assertThat(lowest).as("the pool's available pages while the guest ran: its memory came from them")
                .isLessThanOrEqualTo(before - GUEST_PAGES);
        assertThat(out).as("vCPU 0's thread").contains("thread vcpu-0 1\n");
        assertThat(out).as("vCPU 1's thread").contains("thread vcpu-1 0\n");
        // Linux keeps 15 characters of a thread's name: virtio-blk-disk0-q0 shows as virtio-blk-disk.
        assertThat(out).as("the disk's I/O threads").contains("thread virtio-blk-disk 0\n").doesNotContain("thread virtio-blk-disk 0-1");
    }

    @Test
    void tooFewReservedPagesIsRefusedBeforeBootNamingTheKnobAndTheCount(RealKvm kvm) {
        String run = command(kvm, List.of("run", "--no-rig", "--timeout", "60", "--memory", GUEST_MIB + "M,hugepages=2M"),
                tinyGuest(GuestImages.defaultVmlinux(), "--cmdline", "quiet panamax.run=true"));
        String script = String.join("\n",
                "knob=/proc/sys/vm/nr_hugepages",
                "before=$(cat $knob)",
                "echo 0 > $knob",
                run + "; echo vm-status=$?",
                "echo $before > $knob");

        RunResult r = kvm.run(List.of("sh", "-c", script), Duration.ofSeconds(300), System.out);

        String out = r.output();
        assertThat(r.timedOut()).as(out).isFalse();
        assertThat(out).contains("needs " + GUEST_PAGES + " free pages, and the host has 0",
                "echo " + GUEST_PAGES + " > /proc/sys/vm/nr_hugepages");
        assertThat(out).doesNotContain(GuestImages.INIT_MARKER).doesNotContain("vm-status=0");
    }

    /**
     * A disk held to 2 MiB/s: a guest read of 8 MiB meets the limit (the drive counts throttling
     * events); then {@code PATCH /drives/disk0} switches the limit off while the guest runs, and a
     * read of 16 MiB more meets none. Counted, not timed: the rate itself is measured by
     * ratelimit-accuracy.sh. The guest waits for the PATCH, and then for the second count to be read
     * (its VMM, and so the API, end with it), by polling marks this script writes on its disk.
     */
    @Test
    void aLimitedDiskIsThrottledUntilAPatchLiftsTheLimitWhileTheGuestRuns(RealKvm kvm) {
        int mark = 40 * 2048; // a sector past what the reads touch
        String guest = "dd if=/dev/vda of=/dev/null bs=1M count=8 iflag=direct 2>/dev/null; echo rl-first-done;"
                + " until dd if=/dev/vda bs=512 skip=" + mark + " count=1 iflag=direct 2>/dev/null | grep -q patched; do sleep 1; done;"
                + " dd if=/dev/vda of=/dev/null bs=1M count=16 skip=8 iflag=direct 2>/dev/null; echo rl-second-done;"
                + " until dd if=/dev/vda bs=512 skip=" + (mark + 8) + " count=1 iflag=direct 2>/dev/null | grep -q counted; do sleep 1; done";
        String run = command(kvm, List.of("run", "--no-rig", "--timeout", "300", "--memory", GUEST_MIB + "M", "--api-sock",
                "/tmp/pnx-rl.sock", "--disk", "/tmp/pnx-rl.img,bw=2M"),
                tinyGuest(GuestImages.defaultVmlinux(), "--cmdline", "quiet panamax.run=\"" + guest + "\""));
        String api = command(kvm, List.of("api", "--api-sock", "/tmp/pnx-rl.sock"));
        String script = String.join("\n",
                "dd if=/dev/zero of=/tmp/pnx-rl.img bs=1M count=48 2>/dev/null",
                "log=$(mktemp)",
                run + " > $log 2>&1 &",
                "vm=$!",
                "await() { i=0; until grep -q $1 $log; do i=$((i + 1)); [ $i -lt 240 ] && kill -0 $vm 2>/dev/null || return 1; sleep 1; done; }",
                "await rl-first-done && echo first-done",
                "echo \"before: $(" + api + " GET '/metrics?format=prometheus' | grep '^panamax_block_rate_limiter_throttled_events_total')\"",
                api + " PATCH /drives/disk0 '{\"drive_id\": \"disk0\", \"rate_limiter\": {\"bandwidth\": {\"size\": 0, \"refill_time\": 0}}}'"
                        + " && echo patched-status=0",
                "printf patched | dd of=/tmp/pnx-rl.img bs=512 seek=" + mark + " conv=notrunc 2>/dev/null",
                "await rl-second-done && echo second-done",
                "echo \"after: $(" + api + " GET '/metrics?format=prometheus' | grep '^panamax_block_rate_limiter_throttled_events_total')\"",
                "printf counted | dd of=/tmp/pnx-rl.img bs=512 seek=" + (mark + 8) + " conv=notrunc 2>/dev/null", // the guest may end now
                "wait $vm; echo vm-status=$?",
                "rm -f /tmp/pnx-rl.img /tmp/pnx-rl.sock",
                "sed 's/^/guest: /' $log; rm -f $log");

        RunResult r = kvm.run(List.of("sh", "-c", script), Duration.ofSeconds(600), System.out);

        String out = r.output();
        assertThat(r.timedOut()).as(out).isFalse();
        assertThat(out).contains("first-done", "patched-status=0", "second-done", "vm-status=0");
        long before = Long.parseLong(fact(out, "before: panamax_block_rate_limiter_throttled_events_total\\{drive=\"disk0\"\\} (\\d+)"));
        long after = Long.parseLong(fact(out, "after: panamax_block_rate_limiter_throttled_events_total\\{drive=\"disk0\"\\} (\\d+)"));
        assertThat(before).as("throttling events while 8 MiB were read at 2 MiB/s").isPositive();
        assertThat(after).as("throttling events once the PATCH lifted the limit, 16 MiB later").isEqualTo(before);
    }

    private static String command(RealKvm kvm, List<String> args, String... more) {
        List<String> all = new ArrayList<>(args);
        all.addAll(List.of(more));
        return kvm.javaShellCommand(Panamax.class.getName(), all);
    }

}
