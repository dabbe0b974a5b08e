package dev.panamax.api;

import java.util.Objects;

/**
 * A network interface for the guest: a virtio network device connected to a TAP device on the
 * host. {@link VirtualMachine.Builder#build()} checks the values.
 *
 * @param id a name for the interface: 1 to 64 letters, digits or underscores, unique in the VM
 * @param hostDevice the host's TAP device, e.g. {@code tap0}, used by one interface only
 * @param guestMac the guest's MAC address as six hex pairs ({@code 06:00:ac:10:00:02}), unique
 *     and unicast, or null to let the device choose one
 */
public record NetworkInterface(String id, String hostDevice, String guestMac) {
    public NetworkInterface {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(hostDevice, "hostDevice");
    }
}
