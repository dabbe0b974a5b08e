package dev.panamax.api;

/**
 * The format of a drive's image file, when it is given rather than detected. Detection refuses a
 * file that carries the signature of a format Panamax cannot read (VMDK, VDI, VHDX, LUKS, ...);
 * {@link #RAW} reads any file as the disk's bytes.
 */
public enum DiskFormat {
    /** The file's bytes are the disk's, whatever they hold. */
    RAW,
    /** QEMU's copy-on-write format, versions 2 and 3. */
    QCOW2,
    /** A virtual hard disk (Microsoft's VHD), fixed or dynamic. */
    VHD
}
