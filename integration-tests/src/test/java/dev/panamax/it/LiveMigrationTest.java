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
 * Live migration of a booted 2-vCPU guest between two Panamax processes over a Unix socket, where
 * real KVM is (the rig here): the guest counts twice a second, each count on its console, in its
 * own block of a qcow2 disk on shared storage, down a TCP connection a host program opened into it
 * over a tap, and into a file of a host folder (virtio-fs) it opened once before the first count;
 * {@code panamax migrate} moves it to a {@code panamax run --incoming} waiting on another tap of the
 * same bridge. The counts go on at the destination without a gap or a repeat, the disk holds every
 * count in order, the TCP stream goes on over the same connection, the host file gets every count
 * through the same open file (the guest's FUSE session moved with it), and the guest's clock shows
 * the pause.
 */
@PanamaxTest
@Timeout(1500)
class LiveMigrationTest {
    private static final int LAST = 600; // never reached: the script ends the run once the destination has counted enough
    private static final int MIGRATE_AT = 4;
    private static final int AFTER = 6; // counts the destination must reach after the migration

    @Test
    void aRunningGuestMovesToAnotherProcessWithItsMemoryDiskAndTcpConnection(RealKvm kvm) throws IOException {
        assumeTrue(kvm instanceof Rig || "root".equals(System.getProperty("user.name")),
                "the taps and their network namespace need root on this host; run the test as root");
        Path dir = Files.createDirectories(Path.of("target", "migration-test-" + UUID.randomUUID()).toAbsolutePath());
        Images.create(dir.resolve("blank.qcow2"), CreateOptions.of(ImageFormat.QCOW2, 8 << 20));
        Path share = Files.createDirectories(dir.resolve("share"));
        String suffix = Integer.toHexString(ThreadLocalRandom.current().nextInt(0x10000));
        String namespace = "pnx-mig-" + suffix;
        String tapA = "pnxmiga" + suffix;
        String tapB = "pnxmigb" + suffix;
        // Each count: the console, block i of the disk, and the TCP stream (through a FIFO into the
        // listening nc). No double quotes: the kernel's command line would end panamax.run's value at the first.
        String guest = "ip link set eth0 up; ip addr add 10.9.0.2/24 dev eth0; mkfifo /tmp/f;"
                + " nc -l -p 5001 < /tmp/f > /dev/null & exec 3> /tmp/f; exec 4>> /mnt/mig/counts; echo tcp-listening; i=0;"
                + " while [ $i -lt " + LAST + " ]; do i=$((i+1));"
                + " echo count=$i clock=$(date +%s); echo tcp=$i >&3; echo share=$i >&4;"
                + " echo $i | dd of=/dev/vda bs=512 seek=$i conv=sync 2>/dev/null; sync; sleep 0.5; done";
        String panamax = kvm.javaShellCommand(Panamax.class.getName(), List.of());
        List<String> source = new ArrayList<>(List.of("run", "--no-rig", "--timeout", "900", "--cpus", "2", "--memory", "256M",
                "--api-sock", "/tmp/" + namespace + ".sock")); // not in dir: a 9p share holds no sockets
        source.addAll(List.of(tinyGuest(GuestImages.defaultVmlinux(), "--disk", dir.resolve("data.qcow2").toString(),
                "--net", "tap=" + tapA, "--share", share + ",tag=mig", "--cmdline", "quiet panamax.shares=mig:/mnt/mig panamax.run=\"" + guest + "\"")));
        List<String> destination = List.of("run", "--no-rig", "--timeout", "900", "--incoming", "unix:/tmp/" + namespace + "-mig.sock",
                "--net-override", "net0=" + tapB);
        String in = "ip netns exec " + namespace + " ";
        List<String> script = new ArrayList<>(List.of(
                "taskset -p -c 0 $$ > /dev/null", // as SnapshotRestoreTest: the VMMs on the rig's CPU 0
                // By pid: $(jobs -p) in a trap is a subshell's job list, empty in dash.
                "trap 'kill -9 $dest $src $tcp 2>/dev/null; ip netns del " + namespace + "; rm -f /tmp/" + namespace + "*.sock /tmp/"
                        + namespace + "-tcp.in' EXIT",
                "ip netns add " + namespace + " || exit 1",
                "ip -n " + namespace + " link set lo up",
                "ip -n " + namespace + " link add br0 type bridge || exit 1",
                "ip -n " + namespace + " addr add 10.9.0.1/24 dev br0",
                "ip -n " + namespace + " link set br0 up",
                "for t in " + tapA + " " + tapB + "; do ip -n " + namespace + " tuntap add dev $t mode tap || exit 1;"
                        + " ip -n " + namespace + " link set $t master br0; ip -n " + namespace + " link set $t up; done",
                "cd " + dir,
                "cp blank.qcow2 data.qcow2; rm -f source.log destination.log tcp.log share/counts",
                in + kvm.javaShellCommand(Panamax.class.getName(), destination) + " > destination.log 2>&1 &",
                "dest=$!",
                in + kvm.javaShellCommand(Panamax.class.getName(), source) + " > source.log 2>&1 &",
                "src=$!",
                "died() { kill -0 $1 2>/dev/null && return 1; echo $2-ended-early; sed 's/^/source: /' source.log;"
                        + " sed 's/^/destination: /' destination.log; }",
                "n=0; until grep -q tcp-listening source.log; do n=$((n+1)); [ $n -gt 600 ] && break; died $src source && exit 1; sleep 0.5; done",
                // Its input stays open, a FIFO this shell holds (a closed one would end the connection, and the guest's nc
                // with it); a sleep piped in instead outlived the script in the shared rig (the rig's agent named it).
                "mkfifo /tmp/" + namespace + "-tcp.in && exec 7<>/tmp/" + namespace + "-tcp.in",
                in + "busybox nc 10.9.0.2 5001 < /tmp/" + namespace + "-tcp.in > tcp.log &",
                "tcp=$!",
                "n=0; until grep -q 'count=" + MIGRATE_AT + " ' source.log; do n=$((n+1)); [ $n -gt 600 ] && break;"
                        + " died $src source && exit 1; sleep 0.5; done",
                "timeout 300 " + panamax + " migrate --api-sock /tmp/" + namespace + ".sock --to unix:/tmp/" + namespace + "-mig.sock;"
                        + " echo migrate-status=$?",
                "wait $src; echo source-status=$?",
                "n=0; until [ $(grep -c '^count=' destination.log) -ge " + AFTER + " ]; do n=$((n+1)); [ $n -gt 240 ] && break;"
                        + " died $dest destination && exit 1; sleep 0.5; done",
                "kill -9 $dest; wait $dest 2>/dev/null; sleep 1; kill $tcp 2>/dev/null",
                "sed 's/^/source: /' source.log",
                "sed 's/^/destination: /' destination.log",
                "sed 's/^/tcp: /' tcp.log",
                "sed 's/^/share: /' share/counts",
                // What the guest wrote to its disk, block by block, on both sides of the move.
                panamax + " image convert -O raw data.qcow2 data.raw && i=1 && while [ $i -le 400 ]; do"
                        + " v=$(dd if=data.raw bs=512 skip=$i count=1 2>/dev/null | tr -d '\\000' | head -n 1); [ -z $v ] && break;"
                        + " echo disk-block-$i=$v; i=$((i+1)); done"));

        RunResult r = kvm.run(List.of("sh", "-c", String.join("\n", script)), Duration.ofSeconds(1200), System.out);

        String out = r.output();
        assertThat(r.timedOut()).as(out).isFalse();
        assertThat(out).contains("migrate-status=0", "source-status=0");
        assertThat(logged(out, "source", "the VM migrated: to unix:")).as(out).isTrue();
        assertThat(logged(out, "destination", "migration: the VM runs here")).as(out).isTrue();
        assertThat(logged(out, "destination", "virtio-net (net0): the guest announced itself on the network"))
                .as("the guest's driver took the destination's request to announce itself (gratuitous ARP) and acknowledged it:%n%s", out)
                .isTrue();
        assertThat(logged(out, "source", "migration: rehearsed saving the VM's state in ")
                && logged(out, "destination", "migration: rehearsed building and restoring the VM in "))
                .as("both sides warmed up the steps of the guest's stop before it:%n%s", out)
                .isTrue();
        List<Integer> before = counts(out, "source");
        List<Integer> after = counts(out, "destination");
        assertThat(before).as("the source's counts").startsWith(1).hasSizeGreaterThanOrEqualTo(MIGRATE_AT);
        assertThat(after).as("the destination's counts").hasSizeGreaterThanOrEqualTo(AFTER);
        List<Integer> all = new ArrayList<>(before);
        all.addAll(after);
        assertThat(all).as("the counts on both sides, one after another").isEqualTo(range(1, all.size()));
        List<Integer> tcp = numbers(out, "tcp: tcp=");
        assertThat(tcp).as("what came down the TCP connection").isEqualTo(range(1, tcp.size()));
        assertThat(tcp.size()).as("counts the destination sent over the same connection").isGreaterThan(before.getLast());
        List<Integer> shared = numbers(out, "share: share=");
        assertThat(shared).as("what the guest wrote into the host folder's file").isEqualTo(range(1, shared.size()));
        assertThat(shared.size()).as("counts the destination wrote through the same open file").isGreaterThan(before.getLast());
        List<Integer> disk = numbers(out, "disk-block-\\d+=");
        assertThat(disk).as("the disk's blocks, written on both sides").startsWith(range(1, before.getLast() + AFTER - 1).toArray(Integer[]::new));
        long lastClockThere = lastWholeClock(out, "source");
        long firstClockHere = clock(out, "destination", after.getFirst());
        System.out.println("migration: the guest's clock went from " + lastClockThere + " to " + firstClockHere + " across the move");
        assertThat(firstClockHere - lastClockThere).as("seconds of guest time between the last count there and the first here")
                .isBetween(0L, 5L);
    }

    private static List<Integer> range(int from, int count) {
        List<Integer> r = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            r.add(from + i);
        }
        return r;
    }

    /**
     * Whether {@code who}'s Panamax logged {@code message}. Its log (stderr) and the guest's console
     * (stdout) share one file, so a log line may begin after a console line the guest has not ended yet.
     */
    private static boolean logged(String out, String who, String message) {
        return Pattern.compile("(?m)^" + who + ": .*?panamax: " + Pattern.quote(message)).matcher(out).find();
    }

    private static List<Integer> counts(String out, String who) {
        return numbers(out, who + ": count=");
    }

    private static List<Integer> numbers(String out, String prefix) {
        Matcher m = Pattern.compile("(?m)^" + prefix + "(\\d+)").matcher(out);
        List<Integer> numbers = new ArrayList<>();
        while (m.find()) {
            numbers.add(Integer.parseInt(m.group(1)));
        }
        return numbers;
    }

    /**
     * The clock of {@code who}'s last whole count line. The move may come in the middle of a console line
     * (the guest writes it a byte at a time): the source's last line then ends early, "count=37 clock=1",
     * and the destination prints the rest of it.
     */
    private static long lastWholeClock(String out, String who) {
        Matcher m = Pattern.compile("(?m)^" + who + ": count=\\d+ clock=(\\d+)\\r?$").matcher(out);
        long clock = -1;
        while (m.find()) {
            clock = Long.parseLong(m.group(1));
        }
        assertThat(clock).as(who + " has a whole count line").isNotNegative();
        return clock;
    }

    private static long clock(String out, String who, int count) {
        return Long.parseLong(fact(out, "(?m)^" + who + ": count=" + count + " clock=(\\d+)"));
    }
}
