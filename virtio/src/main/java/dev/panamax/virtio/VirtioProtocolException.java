package dev.panamax.virtio;

/**
 * The driver broke the virtio protocol in a way the device cannot answer (a malformed descriptor
 * chain, bad queue settings). Thrown inside a device; {@link VirtioDevice} turns it into
 * DEVICE_NEEDS_RESET with the message as the reason, so it never leaves an I/O thread.
 */
public final class VirtioProtocolException extends RuntimeException {
    public VirtioProtocolException(String reason) {
        super(reason);
    }
}
