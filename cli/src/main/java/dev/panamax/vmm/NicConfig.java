package dev.panamax.vmm;

import dev.panamax.virtio.ratelimit.RateLimit;
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
 * @param rxRateLimit the limit of frames to the guest ({@link RateLimit#NONE} for none)
 * @param txRateLimit the limit of frames from the guest ({@link RateLimit#NONE} for none)
 */
public record NicConfig(String id, String tapName, int tapFd, Path passtSocket, String guestMac, RateLimit rxRateLimit,
        RateLimit txRateLimit) {
    public NicConfig {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(rxRateLimit, "rxRateLimit");
        Objects.requireNonNull(txRateLimit, "txRateLimit");
    }

    /** An interface without rate limits. */
    public NicConfig(String id, String tapName, int tapFd, Path passtSocket, String guestMac) {
        this(id, tapName, tapFd, passtSocket, guestMac, RateLimit.NONE, RateLimit.NONE);
    }

    /** The host end in words, for a message; null when Panamax starts a passt of the interface's own. */
    public String hostEnd() {
        return tapName != null ? "the host device " + tapName
                : tapFd >= 0 ? "the tap descriptor " + tapFd
                : passtSocket != null ? "the passt socket " + passtSocket : null;
    }
}
