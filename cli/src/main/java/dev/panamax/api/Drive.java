package dev.panamax.api;

import java.nio.file.Path;
import java.util.Objects;

/**
 * A disk for the guest: a virtio block device backed by an image file on the host. {@link
 * VirtualMachine.Builder#build()} checks the values.
 *
 * @param id a name for the drive: 1 to 64 letters, digits or underscores, unique in the VM
 * @param path the image file (raw), which must exist
 * @param readOnly whether the guest may only read the disk
 * @param root whether this is the guest's root file system: it becomes the first disk,
 *     {@code /dev/vda}, and the command line gets {@code root=/dev/vda} (with {@code ro} or {@code rw});
 *     at most one drive is the root
 */
public record Drive(String id, Path path, boolean readOnly, boolean root) {
    public Drive {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(path, "path");
    }
}
