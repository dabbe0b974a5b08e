package dev.panamax.it;

import static dev.panamax.it.PanamaxBootTest.tinyGuest;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.cli.Panamax;
import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RunResult;
import dev.panamax.virtio.net.VirtioNet;
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
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The tiny guest on virtio-net, with each backend: on a tap whose host side sits in a network
 * namespace the test makes, it pings the host side and moves a file each way over TCP; on passt's
 * user-mode network it gets its address by DHCP and fetches a file from an HTTP server on the
 * loopback of the machine Panamax runs on. Files are compared by SHA-256. Everything runs where real
 * KVM is (the rig here, as root; on a host with hardware KVM, root is needed for the namespace).
 */
@PanamaxTest
@Timeout(900) // the first run builds the kernel (5-10 minutes on 2 cores)
class PanamaxNetTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(300);
    private static final Pattern SHA = Pattern.compile("([a-z-]+)=([0-9a-f]{64})");
    private static final String GUEST_MAC = "52:54:00:12:34:56";
    private Path dir;

    @BeforeEach
    void makeDirectory() throws IOException {
        // In the module's target directory, which the rig shares writable (it is inside the work tree).
        dir = Files.createDirectories(Path.of("target", "net-test-" + UUID.randomUUID()).toAbsolutePath());
    }

    private static void assumeRootWhereItRuns(RealKvm kvm) {
        assumeTrue(kvm instanceof Rig || "root".equals(System.getProperty("user.name")),
                "network namespaces and taps need root on this host (whose KVM is hardware-accelerated, so the test runs here"
                        + " and not in the rig, where it runs as root); run the test as root");
    }

    @Test
    void onATapTheGuestPingsTheHostSideAndMovesFilesBothWaysOverTcp(RealKvm kvm) {
        assumeRootWhereItRuns(kvm);
        String suffix = Integer.toHexString(ThreadLocalRandom.current().nextInt(0x10000));
        String namespace = "pnx-net-" + suffix;
        String tap = "pnxtap" + suffix;
        String guest = "echo features=$(cat /sys/bus/virtio/devices/virtio0/features);"
                + " ip link set eth0 up && ip addr add 10.9.0.2/24 dev eth0 && echo mac=$(cat /sys/class/net/eth0/address)"
                + " && ping -c 3 10.9.0.1 && echo ping-ok;"
                + " head -c 1000000 /dev/urandom > /tmp/sent; echo guest-sent=$(sha256sum < /tmp/sent);"
                + " nc 10.9.0.1 5001 < /tmp/sent && echo sent-ok;"
                + " nc 10.9.0.1 5002 < /dev/null > /tmp/received; echo guest-received=$(sha256sum < /tmp/received)";
        String script = String.join("\n",
                "trap 'kill $receiver $sender 2>/dev/null; ip netns del " + namespace + "' EXIT", // by pid, as below
                "ip netns add " + namespace + " || exit 1",
                "ip -n " + namespace + " link set lo up",
                // The tap exists, addressed and up, before Panamax attaches to it inside the namespace.
                "ip -n " + namespace + " tuntap add dev " + tap + " mode tap || exit 1",
                "ip -n " + namespace + " addr add 10.9.0.1/24 dev " + tap,
                "ip -n " + namespace + " link set " + tap + " up",
                "head -c 1000000 /dev/urandom > " + dir + "/to-guest",
                "echo host-sent=$(sha256sum < " + dir + "/to-guest)",
                "ip netns exec " + namespace + " busybox nc -l -p 5001 -e sh -c 'cat > " + dir + "/from-guest' &",
                "receiver=$!",
                "ip netns exec " + namespace + " busybox nc -l -p 5002 -e cat " + dir + "/to-guest &",
                "sender=$!",
                "ip netns exec " + namespace + " " + panamaxCommand(kvm, guest, "--net", "tap=" + tap + ",mac=" + GUEST_MAC),
                "status=$?",
                "echo host-received=$(sha256sum < " + dir + "/from-guest)",
                "exit $status");

        RunResult r = kvm.run(List.of("sh", "-c", script), TIMEOUT, System.out);

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).contains("mac=" + GUEST_MAC, "3 packets transmitted, 3 packets received", "ping-ok", "sent-ok");
        Matcher features = Pattern.compile("features=([01]{64})").matcher(r.output());
        assertThat(features.find()).as("the driver's features, bit 0 first").isTrue();
        for (int bit : new int[] {VirtioNet.VIRTIO_NET_F_CSUM, VirtioNet.VIRTIO_NET_F_GUEST_CSUM, VirtioNet.VIRTIO_NET_F_HOST_TSO4,
                VirtioNet.VIRTIO_NET_F_GUEST_TSO4, VirtioNet.VIRTIO_NET_F_MRG_RXBUF, VirtioNet.VIRTIO_NET_F_STATUS}) {
            assertThat(features.group(1).charAt(bit)).as("feature bit %d, which a tap honours, negotiated", bit).isEqualTo('1');
        }
        assertThat(hash(r, "guest-sent")).as("what the guest sent, the host side received").isEqualTo(hash(r, "host-received"));
        assertThat(hash(r, "host-sent")).as("what the host side sent, the guest received").isEqualTo(hash(r, "guest-received"));
        assertThat(r.exitStatus()).as(r.output()).isZero();
    }

    @Test
    void onPasstsNetworkTheGuestGetsAnAddressByDhcpAndFetchesFromTheHostsLoopback(RealKvm kvm) throws IOException {
        Path www = Files.createDirectories(dir.resolve("www"));
        int port = 20000 + ThreadLocalRandom.current().nextInt(20000);
        // udhcpc hands the lease to a script; this one configures eth0 and keeps the gateway, which
        // passt maps to this machine's loopback.
        String dhcpScript = "#!/bin/sh\\n[ $1 = bound ] || exit 0\\nifconfig $interface $ip netmask $subnet up\\n"
                + "route add default gw $router\\necho $router > /tmp/gateway\\necho lease=$ip via $router\\n";
        String guest = "printf '" + dhcpScript + "' > /tmp/dhcp; chmod +x /tmp/dhcp; ip link set eth0 up;"
                + " udhcpc -i eth0 -f -q -n -t 5 -s /tmp/dhcp"
                + " && wget -q -O /tmp/fetched http://$(cat /tmp/gateway):" + port + "/file && echo guest-fetched=$(sha256sum < /tmp/fetched)";
        String script = String.join("\n",
                // By its pid: $(jobs -p) in a trap is a subshell's job list, empty in dash, and the server outlived
                // the script in the shared rig (the rig's agent named it).
                "trap 'kill $httpd 2>/dev/null' EXIT",
                "head -c 500000 /dev/urandom > " + www + "/file",
                "echo host-served=$(sha256sum < " + www + "/file)",
                "busybox httpd -f -p 127.0.0.1:" + port + " -h " + www + " &",
                "httpd=$!",
                panamaxCommand(kvm, guest, "--net", "user"));

        RunResult r = kvm.run(List.of("sh", "-c", script), TIMEOUT, System.out);

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).containsPattern("lease=\\d+\\.\\d+\\.\\d+\\.\\d+ via \\d+\\.\\d+\\.\\d+\\.\\d+");
        assertThat(hash(r, "guest-fetched")).as("the file the guest fetched is the one served").isEqualTo(hash(r, "host-served"));
        assertThat(r.exitStatus()).as(r.output()).isZero();
    }

    /** {@code panamax run --no-rig} with the tiny guest running {@code guest}, as one shell-quoted command line. */
    private static String panamaxCommand(RealKvm kvm, String guest, String... more) {
        List<String> args = new ArrayList<>(List.of("run", "--no-rig", "--timeout", "240", "--memory", "256M"));
        args.addAll(List.of(tinyGuest(GuestImages.defaultVmlinux(), more)));
        args.addAll(List.of("--cmdline", "quiet panamax.run=\"" + guest + "\""));
        return kvm.javaShellCommand(Panamax.class.getName(), args);
    }

    /** The SHA-256 the output gives as {@code name=HASH}. */
    private static String hash(RunResult r, String name) {
        Matcher m = SHA.matcher(r.output());
        while (m.find()) {
            if (m.group(1).equals(name)) return m.group(2);
        }
        throw new AssertionError("no " + name + "=<sha256> in the output:\n" + r.output());
    }
}
