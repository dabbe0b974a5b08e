package dev.panamax.devices.pci;

import dev.panamax.vm.MmioDevice;

/** A function on the PCI bus: its configuration space and the handlers of its memory BARs. */
public interface PciDevice {
    /** For logs and errors, e.g. "virtio-blk (disk0)". */
    String name();

    PciConfigSpace config();

    /** Serves guest accesses to memory BAR {@code index}, with offsets relative to the BAR. */
    MmioDevice barHandler(int index);

    /**
     * BAR {@code index} now decodes at {@code address}, or at none when {@code address} is -1 (memory
     * decoding off, or moved somewhere unusable); for devices that bind kernel-side handlers, such
     * as ioeventfds, to BAR addresses. Called on the thread that changed it, a vCPU's or the VMM's.
     */
    default void barMapped(int index, long address) {}
}
