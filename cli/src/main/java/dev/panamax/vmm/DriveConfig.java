package dev.panamax.vmm;

import java.nio.file.Path;
import java.util.Objects;

/**
 * A drive as the device manager builds it: a virtio-blk device on an image file.
 *
 * @param id the drive's id, also the disk's serial in the guest
 * @param image the image file (raw, qcow2 or vhd)
 * @param readOnly whether the guest may only read it
 * @param root whether it is the guest's root file system, {@code /dev/vda}
 * @param mmio on virtio-mmio rather than PCI
 */
public record DriveConfig(String id, Path image, boolean readOnly, boolean root, boolean mmio) {
    public DriveConfig {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(image, "image");
    }
}
