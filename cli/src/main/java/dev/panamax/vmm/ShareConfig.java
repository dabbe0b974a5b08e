package dev.panamax.vmm;

import dev.panamax.virtio.fs.CacheMode;
import java.nio.file.Path;
import java.util.Objects;

/**
 * A host directory the guest mounts with {@code mount -t virtiofs TAG DIR}: a virtio-fs device whose
 * FUSE server runs in Panamax.
 *
 * @param directory the host directory served; everything the guest does stays inside it
 * @param tag the name the guest mounts, 1 to 36 bytes of UTF-8 without NUL, unique in the VM
 * @param readOnly whether the guest may only read
 * @param cache what the guest may cache of the share, and for how long
 */
public record ShareConfig(Path directory, String tag, boolean readOnly, CacheMode cache) {
    public ShareConfig {
        Objects.requireNonNull(directory, "directory");
        Objects.requireNonNull(tag, "tag");
        Objects.requireNonNull(cache, "cache");
    }

    /** A share with cache=auto. */
    public ShareConfig(Path directory, String tag, boolean readOnly) {
        this(directory, tag, readOnly, CacheMode.AUTO);
    }
}
