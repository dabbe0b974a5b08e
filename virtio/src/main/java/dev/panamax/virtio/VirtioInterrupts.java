package dev.panamax.virtio;

/**
 * Interrupts a device raises toward the guest, delivered by its transport (PCI: the MSI-X vector of
 * the queue or of the configuration; MMIO: an ISR bit plus the device's irqfd).
 *
 * <p>Called from the device's I/O threads (and from a vCPU thread when the device fails while the
 * driver sets DRIVER_OK). An implementation must not wait for a lock that a vCPU thread may hold
 * while it calls {@link VirtioDevice#setStatus}: a reset waits for the I/O threads to finish.
 */
public interface VirtioInterrupts {
    /** A used-buffer notification for queue {@code queueIndex}. */
    void queue(int queueIndex);

    /** A configuration-change notification; also raised when the device sets DEVICE_NEEDS_RESET. */
    void config();
}
