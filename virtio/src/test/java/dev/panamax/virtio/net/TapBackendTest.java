package dev.panamax.virtio.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.Inet4Address;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A tap whose host side sits in a network namespace made by the test, addressed there as {@link
 * #HOST}, so that its kernel answers the frames the test sends as the guest {@link #GUEST}. Needs
 * CAP_NET_ADMIN and CAP_SYS_ADMIN (a tap, a namespace): without them the tests are skipped and say
 * so; CI runs them as root.
 */
@Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // a hang guard only, on a thread of its own: a wait in epoll ignores interrupts
class TapBackendTest {
    private static final Inet4Address HOST = Frames.address("192.168.77.1");
    private static final Inet4Address GUEST = Frames.address("192.168.77.2");
    private static final MacAddress GUEST_MAC = MacAddress.parse("52:54:00:77:00:02");
    private static final int CSUM_START_L4 = Frames.ETHERNET_BYTES + Frames.IPV4_BYTES;

    private String namespace;
    private TapBackend tap;
    private byte[] hostMac;
    private Arena arena;
    private MemorySegment buffer;

    @BeforeEach
    void tapIntoANamespace() {
        Assumptions.assumeTrue(Host.hasCapabilities(Host.CAP_NET_ADMIN, Host.CAP_SYS_ADMIN),
                "a tap and a network namespace need CAP_NET_ADMIN and CAP_SYS_ADMIN, which this test run lacks;"
                        + " run the tests as root, as CI does");
        String suffix = HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextInt()).substring(0, 7);
        namespace = "pmx-" + suffix;
        Host.run("ip", "netns", "add", namespace);
        tap = TapBackend.open("pmx" + suffix);
        String name = tap.tapName();
        Host.run("ip", "link", "set", name, "netns", namespace);
        Host.run("ip", "-n", namespace, "addr", "add", HOST.getHostAddress() + "/24", "dev", name);
        Host.run("ip", "-n", namespace, "link", "set", name, "up");
        // Known at once, so that the kernel's replies need no ARP round of their own.
        Host.run("ip", "-n", namespace, "neigh", "add", GUEST.getHostAddress(), "lladdr", GUEST_MAC.toString(), "dev", name, "nud", "permanent");
        Matcher mac = Pattern.compile("link/ether (\\S+)").matcher(Host.run("ip", "-n", namespace, "-o", "link", "show", "dev", name));
        assertThat(mac.find()).isTrue();
        hostMac = MacAddress.parse(mac.group(1)).bytes();
        arena = Arena.ofShared(); // made here, used on the test's own thread
        buffer = arena.allocate(NetBackend.RECEIVE_BUFFER_BYTES);
    }

    @AfterEach
    void removeTheNamespace() {
        if (tap != null) tap.close();
        if (arena != null) arena.close();
        if (namespace != null) Host.run("ip", "netns", "del", namespace);
    }

    @Test
    void theHostSideAnswersArp() {
        assertThat(Frames.send(tap, Frames.packet(arena, Frames.arpRequest(GUEST_MAC.bytes(), GUEST, HOST)))).isTrue();
        Received reply = Received.await(tap, buffer, f -> Frames.etherType(f) == Frames.ETHERTYPE_ARP && Frames.u16(f, 20) == 2);
        byte[] arp = reply.frame();
        assertThat(Frames.slice(arp, 0, 6)).as("to the guest").isEqualTo(GUEST_MAC.bytes());
        assertThat(Frames.slice(arp, 22, 6)).as("sender MAC: the tap's").isEqualTo(hostMac);
        assertThat(Frames.address(arp, 28)).as("sender IP").isEqualTo(HOST);
        assertThat(Frames.address(arp, 38)).as("target IP").isEqualTo(GUEST);
        assertThat(VirtioNetHeader.numBuffers(buffer)).isEqualTo(1);
    }

    @Test
    void anEchoRequestWhoseChecksumTheGuestLeftToTheHostIsAnswered() {
        assertThat(tap.offloads()).contains(NetOffload.CHECKSUM, NetOffload.TSO4, NetOffload.TSO6);
        byte[] data = "panamax".getBytes(StandardCharsets.US_ASCII);
        // The checksum field holds what a driver leaves the host to finish: 0, as ICMP has no
        // pseudo-header. Were the header lost on the way, the kernel would drop the request as corrupt.
        byte[] icmp = Frames.icmpEcho(0x4242, 7, data, 0);
        assertThat(Frames.checksum(icmp, 0, icmp.length, 0)).as("the request as sent is corrupt").isNotZero();
        byte[] frame = Frames.ethernet(hostMac, GUEST_MAC.bytes(), Frames.ETHERTYPE_IPV4, Frames.ipv4(GUEST, HOST, Frames.PROTOCOL_ICMP, icmp));
        MemorySegment packet = Frames.packet(arena, frame, VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM, CSUM_START_L4, 2);
        assertThat(Frames.send(tap, packet)).isTrue();

        byte[] reply = Received.await(tap, buffer, f -> Frames.etherType(f) == Frames.ETHERTYPE_IPV4
                && Frames.ipProtocol(f) == Frames.PROTOCOL_ICMP && f[CSUM_START_L4] == 0).frame();
        assertThat(Frames.address(reply, Frames.ETHERNET_BYTES + 12)).isEqualTo(HOST);
        assertThat(Frames.u16(reply, CSUM_START_L4 + 4)).as("identifier").isEqualTo(0x4242);
        assertThat(Frames.u16(reply, CSUM_START_L4 + 6)).as("sequence").isEqualTo(7);
        assertThat(Frames.slice(reply, CSUM_START_L4 + 8, data.length)).isEqualTo(data);
        assertThat(tap.dropped().fromGuest()).isZero();
    }

    @Test
    void udpFromTheHostLeavesItsChecksumToTheGuestOnlyWhenTheGuestAcceptsThat() {
        tap.setReceiveOffloads(EnumSet.of(NetOffload.CHECKSUM));
        Received partial = udpFromHost("first");
        assertThat(partial.header()[0]).as("flags: NEEDS_CSUM").isEqualTo((byte) VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM);
        MemorySegment header = MemorySegment.ofArray(partial.header());
        assertThat(VirtioNetHeader.csumStart(header)).isEqualTo(CSUM_START_L4);
        assertThat(VirtioNetHeader.csumOffset(header)).as("UDP's checksum field").isEqualTo(6);

        tap.setReceiveOffloads(Set.of());
        Received complete = udpFromHost("second");
        assertThat(complete.header()[0] & VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM).isZero();
        assertThat(Frames.udpChecksumValid(complete.frame())).isTrue();
    }

    @Test
    void malformedFramesFromTheGuestAreDroppedAndCountedAndTheTapGoesOn() {
        byte[] arp = Frames.arpRequest(GUEST_MAC.bytes(), GUEST, HOST);
        assertThat(Frames.send(tap, Frames.packet(arena, Frames.slice(arp, 0, 13)))).as("truncated").isTrue();
        assertThat(Frames.send(tap, Frames.packet(arena, new byte[VirtioNetHeader.MAX_FRAME_BYTES + 1]))).as("oversized").isTrue();
        assertThat(Frames.send(tap, Frames.packet(arena, arp, VirtioNetHeader.VIRTIO_NET_HDR_F_DATA_VALID, 0, 0))).as("a device's flag").isTrue();
        assertThat(Frames.send(tap, Frames.packet(arena, arp, VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM, 40, 2))).as("checksum past the end").isTrue();
        assertThat(tap.dropped().fromGuest()).isEqualTo(4);

        assertThat(Frames.send(tap, Frames.packet(arena, arp))).isTrue();
        Received.await(tap, buffer, f -> Frames.etherType(f) == Frames.ETHERTYPE_ARP && Frames.u16(f, 20) == 2);
        assertThat(tap.dropped().fromGuest()).isEqualTo(4);
    }

    @Test
    void framesSentWhileTheHostSideIsDownAreDroppedAndCounted() {
        Host.run("ip", "-n", namespace, "link", "set", tap.tapName(), "down");
        assertThat(Frames.send(tap, Frames.packet(arena, Frames.arpRequest(GUEST_MAC.bytes(), GUEST, HOST)))).isTrue();
        assertThat(tap.dropped().fromGuest()).isEqualTo(1);
    }

    private Received udpFromHost(String text) {
        Host.run("ip", "netns", "exec", namespace, "bash", "-c", "printf " + text + " > /dev/udp/" + GUEST.getHostAddress() + "/9");
        byte[] expected = text.getBytes(StandardCharsets.US_ASCII);
        return Received.await(tap, buffer, f -> Frames.etherType(f) == Frames.ETHERTYPE_IPV4 && Frames.ipProtocol(f) == Frames.PROTOCOL_UDP
                && f.length >= CSUM_START_L4 + 8 + expected.length
                && Arrays.equals(Frames.slice(f, CSUM_START_L4 + 8, expected.length), expected));
    }
}

class TapBackendErrorsTest {
    @Test
    void badNamesAndDescriptorsAreRefusedWithASentence() {
        assertThatThrownBy(() -> TapBackend.open("bad/name")).isInstanceOf(NetBackendException.class)
                .hasMessage("cannot open tap bad/name: tap name 'bad/name' contains '/', which Linux interface names cannot:"
                        + " use letters, digits, '-', '_' or '.'");
        assertThatThrownBy(() -> TapBackend.adopt(-5)).isInstanceOf(NetBackendException.class)
                .hasMessage("cannot use tap fd -5: tap fd -5 is not a file descriptor");
    }
}
