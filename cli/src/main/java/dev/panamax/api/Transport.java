package dev.panamax.api;

/** How a virtio device reaches the guest. */
public enum Transport {
    /** A PCI function with MSI-X: the default. */
    PCI,
    /**
     * A virtio-mmio window, announced to the guest on its kernel command line (at most eight per VM).
     * Linux probes these before PCI devices.
     */
    MMIO
}
