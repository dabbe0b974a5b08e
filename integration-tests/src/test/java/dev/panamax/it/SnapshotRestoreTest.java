package dev.panamax.it;

import static dev.panamax.it.PanamaxBootTest.tinyGuest;
import static dev.panamax.it.ScriptOutput.fact;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.cli.Panamax;
import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RunResult;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A running 2-vCPU guest is snapshotted with its qcow2 disk ({@code panamax snapshot --with-disks})
 * through its API socket, its process killed, and the snapshot restored with {@code panamax run
 * --restore} in new processes, five times from the one snapshot, each run writing on to the disk:
 * the guest's counter goes on from where it stood, what it wrote to its disk before and after is
 * there in order (each restore brings the disk back to the snapshot's), a TCP transfer over the tap
 * works after the restore, the guest's clock goes on from the snapshot's time, and the memory file
 * is unchanged at the end. A diff snapshot taken later, with its disks, and merged onto a copy of
 * the first, restores once more and goes on from the diff's count. The first run counts only while
 * the script lets it, so the snapshots come where the script wants them however slow the rig is. Everything runs where real KVM
 * is (the rig here, as root).
 */
@PanamaxTest
@Timeout(2500)
class SnapshotRestoreTest {
    private static final int RESTORES = 5;
    private static final int SNAPSHOT_AT = 3;
    // The first run's guest counts only while the script lets it (see HOLD), so a slow snapshot command (a JVM start
    // in the rig: 20 s and more) cannot let it reach the end before the diff snapshot is taken (at about count 6).
    // Each of the six restored runs counts on to LAST, half a second and a disk write each: kept short (about a second a
    // count in the rig), with room for the run from the diff (about count 7) to count a few.
    private static final int LAST = 10;
    /**
     * After each count the guest asks the host's port 5009 whether to hold, and waits while the answer
     * is "hold": a listener the script runs for the first run only, answering so while the file
     * {@code hold} exists. A restored run finds no listener (refused) and counts on without asking
     * again (three processes a count are slow in the rig); one restored in the middle of a question, on
     * a connection whose host end is gone, gives up after 3 s.
     */
    private static final String HOLD = " while [ -z $free ]; do r=$(timeout 3 nc 10.9.0.1 5009 < /dev/null 2>/dev/null) || free=1;"
            + " [ x$r = xhold ] || break; sleep 0.5; done;";

    @Test
    void aSnapshotOfARunningGuestRestoresFiveTimesWhereItStood(RealKvm kvm) throws IOException {
        assumeTrue(kvm instanceof Rig || "root".equals(System.getProperty("user.name")),
                "the tap and its network namespace need root on this host; run the test as root");
        Path dir = Files.createDirectories(Path.of("target", "snapshot-test-" + UUID.randomUUID()).toAbsolutePath());
        Path disk = dir.resolve("data.qcow2");
        Path blank = dir.resolve("blank.qcow2");
        Images.create(blank, CreateOptions.of(ImageFormat.QCOW2, 8 << 20));
        String suffix = Integer.toHexString(ThreadLocalRandom.current().nextInt(0x10000));
        String namespace = "pnx-snap-" + suffix;
        String tap = "pnxsnap" + suffix;
        // Counts twice a second, each count in the log and in its own 512-byte block of the disk; at the
        // end reads the blocks back and moves a file over TCP, which only a restored run reaches. (No
        // double quotes: the kernel's command line would end panamax.run's value at the first.)
        String guest = "ip link set eth0 up; ip addr add 10.9.0.2/24 dev eth0; i=0;"
                + " while [ $i -lt " + LAST + " ]; do i=$((i+1));"
                + " echo count=$i clock=$(date +%s);"
                + " echo $i | dd of=/dev/vda bs=512 seek=$i conv=sync 2>/dev/null; sync; sleep 0.5;" + HOLD + " done;"
                + " j=1; ok=yes; while [ $j -le " + LAST + " ]; do"
                + " [ x$(dd if=/dev/vda bs=512 skip=$j count=1 2>/dev/null | head -n 1) = x$j ] || ok=no; j=$((j+1)); done;"
                + " echo disk-in-order=$ok;"
                // Block 8000 was never read before the snapshot (nor read ahead at boot), so this read
                // reaches the disk: each run marks it, and a restore that did not bring the disk back
                // would show the mark.
                + " echo block8000=x$(dd if=/dev/vda bs=512 skip=8000 count=1 2>/dev/null | tr -d '\\000');"
                + " echo marked | dd of=/dev/vda bs=512 seek=8000 conv=sync 2>/dev/null; sync;"
                + " head -c 300000 /dev/urandom > /tmp/sent; echo guest-sent=$(sha256sum < /tmp/sent);"
                + " nc 10.9.0.1 5001 < /tmp/sent && echo sent-ok";
        String panamax = command(kvm, List.of());
        List<String> firstRun = new ArrayList<>(List.of("run", "--no-rig", "--timeout", "600", "--cpus", "2", "--memory", "256M",
                "--track-dirty-pages",
                "--api-sock", "/tmp/" + namespace + ".sock")); // not in dir: a 9p share holds no sockets
        firstRun.addAll(List.of(tinyGuest(GuestImages.defaultVmlinux(), "--disk", disk.toString(), "--net", "tap=" + tap,
                "--cmdline", "quiet panamax.run=\"" + guest + "\"")));
        List<String> script = new ArrayList<>(List.of(
                // Every process here on the rig's CPU 0 (the guest keeps its 2 vCPUs): with a VMM's threads
                // spread over both, the rig's L1 kernel has crashed and guests triple-faulted (net-vs-qemu.sh).
                "taskset -p -c 0 $$ > /dev/null",
                // By pid: $(jobs -p) in a trap is a subshell's job list, empty in dash.
                "trap 'kill -9 $first $holder $listener 2>/dev/null; ip netns del " + namespace + "; rm -f /tmp/" + namespace + ".sock' EXIT",
                "ip netns add " + namespace + " || exit 1",
                "ip -n " + namespace + " link set lo up",
                "ip -n " + namespace + " tuntap add dev " + tap + " mode tap || exit 1",
                "ip -n " + namespace + " addr add 10.9.0.1/24 dev " + tap,
                "ip -n " + namespace + " link set " + tap + " up",
                "cd " + dir,
                // From scratch, also when the shared rig runs the script once more.
                "rm -rf snap diff merged; cp blank.qcow2 data.qcow2; rm -f hold",
                // The first run's hold: a listener answering each question with hold while the file is there.
                "ip netns exec " + namespace + " busybox nc -ll -p 5009 -e sh -c '[ -e hold ] && echo hold' &",
                "holder=$!",
                "ip netns exec " + namespace + " " + command(kvm, firstRun) + " > first.log 2>&1 &",
                "first=$!",
                // A first run that ends early (a triple fault in the rig, say) ends the script at once with its
                // log, rather than leaving the waits below to the test's timeout.
                "firstDied() { kill -0 $first 2>/dev/null && return 1; sed 's/^/first: /' first.log; echo first-ended-early; }",
                "n=0; until grep -q 'count=" + SNAPSHOT_AT + " ' first.log; do n=$((n+1)); [ $n -gt 600 ] && break;"
                        + " firstDied && exit 1; sleep 0.5; done; touch hold",
                // A snapshot that does not end in 3 minutes leaves the VMM's thread dump in its log.
                "dumpIfHung() { [ $1 = 124 ] && kill -QUIT $first 2>/dev/null && sleep 3; return 0; }",
                "timeout 180 " + panamax + " snapshot --api-sock /tmp/" + namespace + ".sock --with-disks snap; s=$?; echo snapshot-status=$s; dumpIfHung $s",
                // Let go, the guest counts twice more and is held again; then a diff snapshot, merged onto a copy
                // of the first, which the last run restores.
                "c=$(grep -c '^count=' first.log); rm hold; n=0; until [ $(grep -c '^count=' first.log) -ge $((c + 2)) ]; do"
                        + " n=$((n+1)); [ $n -gt 120 ] && break; firstDied && exit 1; sleep 0.5; done; touch hold",
                "timeout 180 " + panamax + " snapshot --api-sock /tmp/" + namespace + ".sock --with-disks --diff --leave-paused diff;"
                        + " s=$?; echo diff-status=$s; dumpIfHung $s",
                "kill -9 $first $holder; wait $first $holder 2>/dev/null; rm -f hold",
                "sed 's/^/first: /' first.log",
                "cp -r snap merged && " + panamax + " snapshot-merge diff merged; echo merge-status=$?",
                "echo diff-memory-bytes=$(du -k diff/vm.mem | cut -f1) full-memory-bytes=$(du -k snap/vm.mem | cut -f1)",
                "echo memory-before=$(sha256sum < snap/vm.mem | cut -c1-64)"));
        for (int run = 1; run <= RESTORES + 1; run++) {
            String snapshot = run <= RESTORES ? "snap" : "merged";
            script.addAll(List.of(
                    "ip netns exec " + namespace + " busybox nc -l -p 5001 -e sh -c 'cat > received' &",
                    "listener=$!",
                    "ip netns exec " + namespace + " " + panamax + " run --no-rig --timeout 300 --boot-time --restore " + snapshot + " > restore.log 2>&1;"
                            + " echo restore-" + run + "-status=$?",
                    "sed 's/^/restore-" + run + ": /' restore.log",
                    "echo restore-" + run + "-received=$(sha256sum < received | cut -c1-64)",
                    "kill $listener 2>/dev/null; wait $listener 2>/dev/null; rm -f received"));
        }
        script.add("echo memory-after=$(sha256sum < snap/vm.mem | cut -c1-64)");

        // About 7 minutes in a healthy rig, twice that on a loaded machine; the class's timeout leaves room for
        // the shared rig's second try in a fresh rig.
        RunResult r = kvm.run(List.of("sh", "-c", String.join("\n", script)), Duration.ofSeconds(1200), System.out);

        String out = r.output();
        assertThat(r.timedOut()).as(out).isFalse();
        assertThat(out).contains("snapshot-status=0", "diff-status=0", "merge-status=0");
        int restoredAt = counts(out, "restore-1").getFirst();
        assertThat(restoredAt - 1).as("the full snapshot was taken after count " + SNAPSHOT_AT).isGreaterThanOrEqualTo(SNAPSHOT_AT);
        // The snapshot came after the first run's count restoredAt - 1 and before its count restoredAt (the guest held
        // between them while the snapshot command started), so a restored guest's clock, going on from the snapshot's,
        // reads within those two (a few seconds more: a restored guest may first wait out a question to the holder).
        long clockBeforeSnapshot = clock(out, "first", restoredAt - 1);
        long clockAfterSnapshot = clock(out, "first", restoredAt);
        for (int run = 1; run <= RESTORES; run++) {
            String who = "restore-" + run;
            assertThat(out).contains(who + "-status=0");
            List<Integer> counts = counts(out, who);
            assertThat(counts).as(who + " goes on from the snapshot's count, as every restore of it does, not from 1").isNotEmpty()
                    .doesNotContain(1).contains(LAST);
            assertThat(counts.getFirst()).as(who + "'s first count").isEqualTo(restoredAt);
            assertThat(clock(out, who, restoredAt)).as(who + ": the guest's clock goes on from the snapshot's time")
                    .isBetween(clockBeforeSnapshot, clockAfterSnapshot + 5);
            assertRunEnded(out, who);
            assertThat(fact(out, who + "-received=([0-9a-f]{64})")).as(who + ": what the guest sent over TCP arrived")
                    .isEqualTo(fact(out, who + ": guest-sent=([0-9a-f]{64})"));
            assertThat(out).contains(who + ": panamax: vCPUs resume");
        }
        int diffAt = lastCount(out, "first");
        assertThat(diffAt).as("the guest ran on after the full snapshot").isGreaterThanOrEqualTo(restoredAt + 1);
        String merged = "restore-" + (RESTORES + 1);
        assertThat(out).contains(merged + "-status=0", merged + ": panamax: vCPUs resume");
        // The diff was taken paused and the process killed, so the merged run goes on from the first run's
        // last count (one more if the pause cut a count's line short).
        assertThat(counts(out, merged)).as(merged + ", from the merged diff, goes on from where the diff stood").isNotEmpty()
                .contains(LAST).first().matches(c -> c == diffAt + 1 || c == diffAt + 2, "is " + (diffAt + 1) + " or " + (diffAt + 2));
        assertRunEnded(out, merged);
        assertThat(fact(out, merged + "-received=([0-9a-f]{64})")).isEqualTo(fact(out, merged + ": guest-sent=([0-9a-f]{64})"));
        assertThat(Long.parseLong(fact(out, "diff-memory-bytes=(\\d+)"))).as("KiB of the diff's memory file, against the full one's")
                .isLessThan(Long.parseLong(fact(out, "full-memory-bytes=(\\d+)")));
        assertThat(fact(out, "memory-after=([0-9a-f]{64})")).as("restores never write the memory file")
                .isEqualTo(fact(out, "memory-before=([0-9a-f]{64})"));
        assertThat(r.exitStatus()).isZero();
    }

    /** The run counted to the end, found its disk in order and as the snapshot left it, and sent its file. */
    private static void assertRunEnded(String out, String who) {
        assertThat(out).contains(who + ": disk-in-order=yes", who + ": sent-ok");
        assertThat(out).as(who + " found the disk as the snapshot left it, not as the run before marked it")
                .containsPattern("(?m)^" + who + ": block8000=x\\r?$");
    }

    private static String command(RealKvm kvm, List<String> args) {
        return kvm.javaShellCommand(Panamax.class.getName(), args);
    }

    private static List<Integer> counts(String out, String who) {
        Matcher m = Pattern.compile("(?m)^" + who + ": count=(\\d+) ").matcher(out);
        List<Integer> counts = new ArrayList<>();
        while (m.find()) counts.add(Integer.parseInt(m.group(1)));
        return counts;
    }

    private static int lastCount(String out, String who) {
        List<Integer> counts = counts(out, who);
        assertThat(counts).as(who + " counted").isNotEmpty();
        return counts.getLast();
    }

    private static long clock(String out, String who, int count) {
        return Long.parseLong(fact(out, "(?m)^" + who + ": count=" + count + " clock=(\\d+)"));
    }

}
