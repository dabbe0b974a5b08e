package dev.panamax.vmm;

import java.nio.file.Path;
import java.util.Objects;

/**
 * The VM's vsock device, as Firecracker's: the guest's context ID and the host side's Unix socket,
 * to which host programs connect (and {@code <udsPath>_<port>} sockets where they take the guest's
 * connections to host port {@code port}).
 *
 * @param guestCid 3 to 2^32-2
 * @param udsPath the host side's socket; it must not exist when the VM starts, and goes when it ends
 */
public record VsockConfig(long guestCid, Path udsPath) {
    public VsockConfig {
        Objects.requireNonNull(udsPath, "udsPath");
    }
}
