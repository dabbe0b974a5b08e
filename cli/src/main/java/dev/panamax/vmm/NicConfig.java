package dev.panamax.vmm;

import java.nio.file.Path;
import java.util.Objects;

/**
 * A network interface as the device manager builds it: a virtio-net device on PCI, on exactly one
 * host end.
 *
 * @param id the interface's id
 * @param tapName the host's TAP device by name, or null
 * @param tapFd an inherited TAP descriptor, or -1
 * @param passtSocket a running passt's socket, or null; with no tap either, Panamax starts a passt
 * @param guestMac the guest's MAC address, or null for a random one
 */
public record NicConfig(String id, String tapName, int tapFd, Path passtSocket, String guestMac) {
    public NicConfig {
        Objects.requireNonNull(id, "id");
    }

    /** The host end in words, for a message; null when Panamax starts a passt of the interface's own. */
    public String hostEnd() {
        return tapName != null ? "the host device " + tapName
                : tapFd >= 0 ? "the tap descriptor " + tapFd
                : passtSocket != null ? "the passt socket " + passtSocket : null;
    }
}
