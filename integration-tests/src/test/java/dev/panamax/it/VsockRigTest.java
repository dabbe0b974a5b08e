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
import java.util.concurrent.ThreadLocalRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The tiny guest's Linux talks to host programs over Panamax's virtio-vsock, through Firecracker's
 * Unix-socket host side, with the guest's {@code /bin/vsock}: 16 MiB from the host to the guest and
 * 16 MiB from the guest to the host with matching SHA-256, 20 connections at once, a CONNECT to a
 * port nobody listens on refused on both sides, and a host program that vanishes mid-stream leaving
 * the VM and its other connections working ({@link VsockPeer} is the host side). Runs where real KVM
 * is (the rig here).
 */
@PanamaxTest
@Timeout(900)
class VsockRigTest {

    @Test
    void streamsBothWaysManyAtOnceRefusalsAndAVanishingPeer(RealKvm kvm) {
        String uds = "/tmp/pnx-vsock-" + Integer.toHexString(ThreadLocalRandom.current().nextInt(0x10000)) + ".sock";
        // (Each vsock command's stdin is a file: the relay ends when both directions have ended, and the
        // console never ends.) Port 5000 answers the SHA-256 of what it read, 5001 sends zeros for ever, 5002 ends the script.
        String guest = "vsock listen -k 5000 -- sha256sum & vsock listen -k 5001 -- cat /dev/zero &"
                + " head -c 16777216 /dev/urandom > /tmp/g2h; echo guest-g2h-sha=$(sha256sum < /tmp/g2h | cut -c1-64);"
                + " n=0; until vsock connect 2 6000 < /tmp/g2h > /dev/null; do n=$((n+1)); [ $n -gt 120 ] && break; sleep 1; done;"
                + " echo g2h-sent-after=$n;"
                + " vsock connect 2 7001 < /dev/null; echo guest-refused-status=$?;"
                + " vsock listen 5002 < /dev/null > /dev/null; echo guest-done";
        String run = command(kvm, List.of("run", "--no-rig", "--timeout", "600", "--memory", "256M",
                "--vsock", "cid=5,uds=" + uds), tinyGuest(GuestImages.defaultVmlinux(), "--cmdline", "quiet panamax.run=\"" + guest + "\""));
        String peer = kvm.javaShellCommand(VsockPeer.class.getName(), List.of(uds));
        String script = String.join("\n",
                "rm -f " + uds + " " + uds + "_*",
                "log=$(mktemp)",
                run + " > $log 2>&1 &",
                "vm=$!",
                peer + " | sed 's/^/peer: /'",
                "wait $vm; echo vm-status=$?",
                "sed 's/^/guest: /' $log; rm -f $log");

        RunResult r = kvm.run(List.of("sh", "-c", script), Duration.ofSeconds(800), System.out);

        String out = r.output();
        assertThat(r.timedOut()).as(out).isFalse();
        assertThat(out).as("host to guest, 16 MiB").contains("peer: h2g=ok");
        assertThat(out).as("20 connections at once, 512 KiB each").contains("peer: concurrent-20=ok");
        assertThat(out).as("a CONNECT to a port nobody listens on").contains("peer: refused=ok");
        assertThat(out).as("a guest connection to a host port nobody listens on").contains("guest: guest-refused-status=1");
        assertThat(out).as("after a host program vanished mid-stream").contains("peer: after-vanish=ok");
        assertThat(fact(out, "peer: g2h-bytes=(\\d+)")).as("guest to host, bytes").isEqualTo(String.valueOf(16 << 20));
        assertThat(fact(out, "peer: g2h-sha=([0-9a-f]{64})")).as("guest to host, 16 MiB")
                .isEqualTo(fact(out, "guest: guest-g2h-sha=([0-9a-f]{64})"));
        assertThat(out).contains("guest: guest-done", "vm-status=0");
    }

    private static String command(RealKvm kvm, List<String> args, String... more) {
        List<String> all = new ArrayList<>(args);
        all.addAll(List.of(more));
        return kvm.javaShellCommand(Panamax.class.getName(), all);
    }

}
