package dev.panamax.vmm;

import dev.panamax.storage.ImageFormat;
import dev.panamax.virtio.ratelimit.RateLimit;
import java.nio.file.Path;
import java.util.Objects;

/**
 * A drive as the device manager builds it: a virtio-blk device on an image file.
 *
 * @param id the drive's id, also the disk's serial in the guest
 * @param image the image file (raw, qcow2, vhd, vmdk, vdi or vhdx)
 * @param readOnly whether the guest may only read it
 * @param root whether it is the guest's root file system, {@code /dev/vda}
 * @param mmio on virtio-mmio rather than PCI
 * @param rateLimit the device's rate limit ({@link RateLimit#NONE} for none)
 * @param format the image's format, or null to probe it ({@link dev.panamax.storage.image.Images#probe})
 */
public record DriveConfig(String id, Path image, boolean readOnly, boolean root, boolean mmio, RateLimit rateLimit,
        ImageFormat format) {
    public DriveConfig {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(image, "image");
        Objects.requireNonNull(rateLimit, "rateLimit");
    }

    /** A drive whose format is probed. */
    public DriveConfig(String id, Path image, boolean readOnly, boolean root, boolean mmio, RateLimit rateLimit) {
        this(id, image, readOnly, root, mmio, rateLimit, null);
    }

    /** A drive without a rate limit. */
    public DriveConfig(String id, Path image, boolean readOnly, boolean root, boolean mmio) {
        this(id, image, readOnly, root, mmio, RateLimit.NONE);
    }
}
