package dev.panamax.api;

import java.nio.file.Path;
import java.util.Objects;

/**
 * A network interface for the guest: a virtio network device on PCI, connected to one of
 * <ul>
 *   <li>a TAP device on the host, by name ({@link #tap}), or by a descriptor this process already
 *       holds ({@link #tapDescriptor}), as a program that made the tap with its own privileges passes it;
 *   <li>a user-mode network that passt provides ({@link #user}): Panamax starts passt for the
 *       interface, no privileges needed, and the guest gets an address by DHCP, DNS forwarding and
 *       outbound connections through this host's sockets, its loopback included (passt's Debian
 *       package must be installed); or a passt already listening on a Unix socket ({@link #passt}).
 * </ul>
 * {@link VirtualMachine.Builder#build()} checks the values.
 *
 * @param id a name for the interface: 1 to 64 letters, digits or underscores, unique in the VM
 * @param hostDevice the host's TAP device by name, e.g. {@code tap0}, used by one interface only,
 *     or null; creating a tap, or attaching to one owned by another user, needs CAP_NET_ADMIN
 * @param tapDescriptor an open descriptor of a TAP device attached with {@code IFF_TAP | IFF_NO_PI |
 *     IFF_VNET_HDR}, which the VM takes over and closes when it ends, or -1
 * @param passtSocket the Unix socket of a passt already running (for the user-mode network), or null
 * @param guestMac the guest's MAC address as six hex pairs ({@code 06:00:ac:10:00:02}), unique
 *     and unicast, or null for a random locally administered one
 * @param rxRateLimiter limits the frames the guest receives (bytes and frames), or null for no limit;
 *     frames beyond it wait in the host end (the tap's or passt's queue), none is dropped for it
 * @param txRateLimiter limits the frames the guest sends, or null for no limit; frames beyond it wait
 *     in the guest's transmit queue
 */
public record NetworkInterface(String id, String hostDevice, int tapDescriptor, Path passtSocket, String guestMac,
        RateLimiter rxRateLimiter, RateLimiter txRateLimiter) {
    public NetworkInterface {
        Objects.requireNonNull(id, "id");
        if (tapDescriptor < -1) {
            throw new IllegalArgumentException("tapDescriptor " + tapDescriptor + " is not a descriptor: give one from 0 up, or -1 for none");
        }
        int backends = (hostDevice != null ? 1 : 0) + (tapDescriptor >= 0 ? 1 : 0) + (passtSocket != null ? 1 : 0);
        if (backends > 1) {
            throw new IllegalArgumentException("network interface " + id + " has more than one of a host device, a tap descriptor"
                    + " and a passt socket; give it one");
        }
    }

    /** An interface without rate limits. */
    public NetworkInterface(String id, String hostDevice, int tapDescriptor, Path passtSocket, String guestMac) {
        this(id, hostDevice, tapDescriptor, passtSocket, guestMac, null, null);
    }

    /** This interface with {@code rx} and {@code tx} as its receive and transmit limits (null: no limit). */
    public NetworkInterface withRateLimiters(RateLimiter rx, RateLimiter tx) {
        return new NetworkInterface(id, hostDevice, tapDescriptor, passtSocket, guestMac, rx, tx);
    }

    /** An interface on the host's TAP device {@code hostDevice}. */
    public static NetworkInterface tap(String id, String hostDevice, String guestMac) {
        return new NetworkInterface(id, Objects.requireNonNull(hostDevice, "hostDevice"), -1, null, guestMac);
    }

    /** An interface on the TAP device open as {@code descriptor} in this process, which the VM takes over. */
    public static NetworkInterface tapDescriptor(String id, int descriptor, String guestMac) {
        if (descriptor < 0) {
            throw new IllegalArgumentException("tap descriptor " + descriptor + " is not a descriptor");
        }
        return new NetworkInterface(id, null, descriptor, null, guestMac);
    }

    /** An interface on a user-mode network of its own, which Panamax starts passt for. */
    public static NetworkInterface user(String id, String guestMac) {
        return new NetworkInterface(id, null, -1, null, guestMac);
    }

    /** An interface on the user-mode network of the passt listening at {@code socket}. */
    public static NetworkInterface passt(String id, Path socket, String guestMac) {
        return new NetworkInterface(id, null, -1, Objects.requireNonNull(socket, "socket"), guestMac);
    }

    /** Whether this interface is on passt's user-mode network rather than a TAP device. */
    public boolean isUserMode() {
        return hostDevice == null && tapDescriptor < 0;
    }

    /** Whether Panamax starts passt for this interface. */
    public boolean startsPasst() {
        return isUserMode() && passtSocket == null;
    }
}
