package dev.panamax.virtio.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.guest.DebianPackages;
import dev.panamax.sys.UnixStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.Inet4Address;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The real passt (Debian's package, installed on first use), started by the backend. It hands a
 * guest this host's address and gateway, as its manual says, and answers ARP for the gateway itself.
 */
@Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // a hang guard only, on a thread of its own: a wait in epoll ignores interrupts
class PasstBackendTest {
    private static final int BOOTP = Frames.ETHERNET_BYTES + Frames.IPV4_BYTES + 8;

    /** This host's IPv4 default route: passt's template for what it offers a guest. */
    private record DefaultRoute(Inet4Address gateway, Inet4Address address) {}

    @BeforeAll
    static void installPasst() {
        DebianPackages.ensureInstalled("passt");
    }

    @Test
    void passtOffersThisHostsAddressByDhcpAndAnswersArpForTheGateway() {
        DefaultRoute route = defaultRoute();
        try (PasstBackend passt = PasstBackend.start(); Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(NetBackend.RECEIVE_BUFFER_BYTES);
            byte[] mac = MacAddress.random().bytes();
            int xid = 0x504d5801;
            assertThat(Frames.send(passt, Frames.packet(arena, Frames.dhcpDiscover(mac, xid)))).isTrue();

            Received offer = Received.await(passt, buffer, f -> isDhcpReply(f, xid));
            assertThat(offer.header()).as("a plain header: passt finished the checksums")
                    .containsExactly(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0);
            byte[] reply = offer.frame();
            assertThat(reply[BOOTP]).as("BOOTREPLY").isEqualTo((byte) 2);
            assertThat(Frames.slice(reply, BOOTP + 28, 6)).as("chaddr").isEqualTo(mac);
            Inet4Address offered = Frames.address(reply, BOOTP + 16);
            assertThat(offered).as("yiaddr").isEqualTo(route.address());
            assertThat(dhcpOption(reply, 53)).as("message type OFFER").containsExactly(2);
            assertThat(dhcpOption(reply, 3)).as("router").isEqualTo(route.gateway().getAddress());
            assertThat(Frames.udpChecksumValid(reply) || Frames.u16(reply, BOOTP - 2) == 0).isTrue();
            byte[] passtMac = Frames.slice(reply, 6, 6);

            assertThat(Frames.send(passt, Frames.packet(arena, Frames.arpRequest(mac, offered, route.gateway())))).isTrue();
            byte[] arp = Received.await(passt, buffer, f -> Frames.etherType(f) == Frames.ETHERTYPE_ARP).frame();
            int body = Frames.ETHERNET_BYTES;
            assertThat(Frames.u16(arp, body + 6)).as("ARP reply").isEqualTo(2);
            assertThat(Frames.slice(arp, body + 8, 6)).as("sender MAC: passt's, as in the offer").isEqualTo(passtMac);
            assertThat(Frames.address(arp, body + 14)).as("sender IP").isEqualTo(route.gateway());
            assertThat(Frames.slice(arp, body + 18, 6)).as("target MAC").isEqualTo(mac);
            assertThat(Frames.address(arp, body + 24)).as("target IP").isEqualTo(offered);
            assertThat(passt.dropped().toGuest()).isZero();
            assertThat(passt.dropped().fromGuest()).isZero();
        }
    }

    @Test
    void closingEndsPasstAndRemovesItsSocketDirectory() {
        defaultRoute();
        PasstBackend passt = PasstBackend.start();
        Path socket = ((UnixStream) passt.descriptor()).path();
        assertThat(socket).exists();
        assertThat(passtsOf(socket)).hasSize(1);
        passt.close();
        passt.close();
        assertThat(socket.getParent()).doesNotExist();
        assertThat(passtsOf(socket)).isEmpty();
        assertThat(passt.descriptor().isOpen()).isFalse();
    }

    @Test
    void aMissingPasstIsNamedWithTheCommandThatInstallsIt() {
        assertThatThrownBy(() -> PasstBackend.start("/nonexistent/passt")).isInstanceOf(NetBackendException.class)
                .hasMessageContaining("cannot run /nonexistent/passt").hasMessageContaining("apt-get install passt");
    }

    @Test
    void aPasstThatExitsAtOnceIsReportedWithItsStatus() {
        assertThatThrownBy(() -> PasstBackend.start("false")).isInstanceOf(NetBackendException.class)
                .hasMessageContaining("passt exited with status 1 before opening its socket");
    }

    private static List<ProcessHandle> passtsOf(Path socket) {
        return ProcessHandle.current().children()
                .filter(p -> p.isAlive() && p.info().arguments().map(a -> List.of(a).contains(socket.toString())).orElse(false))
                .toList();
    }

    private static boolean isDhcpReply(byte[] f, int xid) {
        return Frames.etherType(f) == Frames.ETHERTYPE_IPV4 && Frames.ipProtocol(f) == Frames.PROTOCOL_UDP
                && Frames.u16(f, BOOTP - 8) == 67 && Frames.u16(f, BOOTP - 6) == 68
                && ByteBuffer.wrap(f, BOOTP + 4, 4).getInt() == xid;
    }

    /** The value of DHCP option {@code code} of a reply, or an empty array. */
    private static byte[] dhcpOption(byte[] f, int code) {
        for (int i = BOOTP + 240; i < f.length && (f[i] & 0xff) != 255; ) {
            int c = f[i] & 0xff;
            if (c == 0) {
                i++;
                continue;
            }
            int length = f[i + 1] & 0xff;
            if (c == code) return Frames.slice(f, i + 2, length);
            i += 2 + length;
        }
        return new byte[0];
    }

    private static DefaultRoute defaultRoute() {
        List<String> routes = Host.lines("ip", "-4", "-o", "route", "show", "default");
        Assumptions.assumeFalse(routes.isEmpty(), "Debian 12's passt starts only where the host has a default IPv4 route"
                + " (it derives the guest's network from it), and this one has none; CI's machines have one");
        Matcher route = Pattern.compile("via (\\S+) dev (\\S+)").matcher(routes.get(0));
        assertThat(route.find()).as(routes.get(0)).isTrue();
        String device = route.group(2);
        Matcher address = Pattern.compile("inet (\\S+)/").matcher(String.join("\n", Host.lines("ip", "-4", "-o", "addr", "show", "dev", device)));
        assertThat(address.find()).as("an IPv4 address on " + device).isTrue();
        return new DefaultRoute(Frames.address(route.group(1)), Frames.address(address.group(1)));
    }
}
