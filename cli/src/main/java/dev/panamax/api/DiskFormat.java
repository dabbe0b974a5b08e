package dev.panamax.api;

/**
 * The format of a drive's image file, when it is given rather than detected. Detection refuses a
 * file that carries the signature of a format Panamax cannot read (QED, LUKS, ...);
 * {@link #RAW} reads any file as the disk's bytes.
 */
public enum DiskFormat {
    /** The file's bytes are the disk's, whatever they hold. */
    RAW,
    /** QEMU's copy-on-write format, versions 2 and 3. */
    QCOW2,
    /** A virtual hard disk (Microsoft's VHD), fixed or dynamic. */
    VHD,
    /**
     * A VMware disk: monolithicSparse (read and written), streamOptimized and monolithicFlat (read-only:
     * attach them read-only).
     */
    VMDK,
    /** A VirtualBox disk image, dynamic or static. */
    VDI,
    /** A Hyper-V disk (VHDX), dynamic or fixed; read-only: attach it read-only. */
    VHDX
}
