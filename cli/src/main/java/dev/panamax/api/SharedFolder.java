package dev.panamax.api;

import java.nio.file.Path;
import java.util.Objects;

/**
 * A host directory the guest mounts with {@code mount -t virtiofs TAG DIR}: a virtio-fs device
 * whose FUSE server runs inside Panamax, keeping every access inside the directory. A VM with a
 * shared folder cannot be snapshotted (the guest's open files are host handles).
 * {@link VirtualMachine.Builder#build()} checks the values.
 *
 * @param path the host directory, which must exist (and be writable unless {@code readOnly})
 * @param tag the name the guest mounts: 1 to 36 bytes of UTF-8 without NUL, unique in the VM
 * @param readOnly whether the guest may only read (changes fail with EROFS)
 */
public record SharedFolder(Path path, String tag, boolean readOnly) {
    public SharedFolder {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(tag, "tag");
    }
}
