package dev.panamax.api;

import java.util.Objects;

/**
 * A network interface for the guest: a virtio network device on PCI, connected either to a TAP
 * device on the host, or (without a host device) to a user-mode network that passt provides:
 * Panamax starts passt for the interface, no privileges needed, and the guest gets an address by
 * DHCP, DNS forwarding and outbound connections through this host's sockets, its loopback included
 * (passt's Debian package must be installed). {@link VirtualMachine.Builder#build()} checks the values.
 *
 * @param id a name for the interface: 1 to 64 letters, digits or underscores, unique in the VM
 * @param hostDevice the host's TAP device, e.g. {@code tap0}, used by one interface only, or null
 *     for user-mode networking; creating a tap, or attaching to one owned by another user, needs
 *     CAP_NET_ADMIN
 * @param guestMac the guest's MAC address as six hex pairs ({@code 06:00:ac:10:00:02}), unique
 *     and unicast, or null for a random locally administered one
 */
public record NetworkInterface(String id, String hostDevice, String guestMac) {
    public NetworkInterface {
        Objects.requireNonNull(id, "id");
    }

    /** An interface on the host's TAP device {@code hostDevice}. */
    public static NetworkInterface tap(String id, String hostDevice, String guestMac) {
        return new NetworkInterface(id, Objects.requireNonNull(hostDevice, "hostDevice"), guestMac);
    }

    /** An interface on a user-mode network of its own, which passt provides. */
    public static NetworkInterface user(String id, String guestMac) {
        return new NetworkInterface(id, null, guestMac);
    }

    /** Whether this interface is on passt's user-mode network rather than a TAP device. */
    public boolean isUserMode() {
        return hostDevice == null;
    }
}
