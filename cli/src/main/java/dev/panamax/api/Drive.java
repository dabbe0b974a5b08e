package dev.panamax.api;

import java.nio.file.Path;
import java.util.Objects;

/**
 * A disk for the guest: a virtio block device backed by an image file on the host (raw, qcow2 or
 * vhd, detected unless given), with one request queue per vCPU. The image is locked while the VM has
 * it open, so no other Panamax can write it. {@link VirtualMachine.Builder#build()} checks the values.
 *
 * @param id a name for the drive: 1 to 64 letters, digits or underscores, unique in the VM; the guest
 *     reads its first 20 characters as the disk's serial ({@code /sys/block/vdX/serial})
 * @param path the image file, which must exist
 * @param readOnly whether the guest may only read the disk
 * @param root whether this is the guest's root file system: it becomes the first disk,
 *     {@code /dev/vda}, and the command line gets {@code root=/dev/vda} (with {@code ro} or {@code rw});
 *     at most one drive is the root
 * @param transport PCI, or virtio-mmio
 * @param rateLimiter limits the guest's requests to the disk (bytes and requests), or null for no
 *     limit; {@link VirtualMachine#updateDrive} changes it while the VM runs
 * @param format the image's format, or null to detect it from the file's contents (a file in a
 *     format Panamax cannot read, such as QED, is then refused); {@link DiskFormat#RAW}
 *     gives the guest any file's bytes as they are
 */
public record Drive(String id, Path path, boolean readOnly, boolean root, Transport transport, RateLimiter rateLimiter,
        DiskFormat format) {
    public Drive {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(transport, "transport");
    }

    /** A drive whose image format is detected. */
    public Drive(String id, Path path, boolean readOnly, boolean root, Transport transport, RateLimiter rateLimiter) {
        this(id, path, readOnly, root, transport, rateLimiter, null);
    }

    /** A drive without a rate limit. */
    public Drive(String id, Path path, boolean readOnly, boolean root, Transport transport) {
        this(id, path, readOnly, root, transport, null);
    }

    /** A drive on PCI. */
    public Drive(String id, Path path, boolean readOnly, boolean root) {
        this(id, path, readOnly, root, Transport.PCI);
    }

    /** This drive with {@code limiter} (null: no limit). */
    public Drive withRateLimiter(RateLimiter limiter) {
        return new Drive(id, path, readOnly, root, transport, limiter, format);
    }

    /** This drive with its image in {@code f} (null: detected). */
    public Drive withFormat(DiskFormat f) {
        return new Drive(id, path, readOnly, root, transport, rateLimiter, f);
    }
}
