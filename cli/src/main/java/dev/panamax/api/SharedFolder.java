package dev.panamax.api;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Objects;

/**
 * A host directory the guest mounts with {@code mount -t virtiofs TAG DIR}: a virtio-fs device
 * whose FUSE server runs inside Panamax, keeping every access inside the directory. A snapshot of
 * the VM keeps the guest's open files and the names it knows by their paths in the directory (a
 * restore opens them again there), not the directory's files: those stay the host's.
 * {@link VirtualMachine.Builder#build()} checks the values.
 *
 * @param path the host directory, which must exist (and be writable unless {@code readOnly})
 * @param tag the name the guest mounts: 1 to 36 bytes of UTF-8 without NUL, unique in the VM
 * @param readOnly whether the guest may only read (changes fail with EROFS)
 * @param cache what the guest may cache of the share, and for how long
 */
public record SharedFolder(Path path, String tag, boolean readOnly, Cache cache) {
    /** What the guest caches of a share's names, attributes and file data: virtiofsd's {@code cache=} modes. */
    public enum Cache {
        /** The default: names and attributes for a second, file data until the file changes on the host. */
        AUTO,
        /**
         * Nothing: every lookup, stat, read and write goes to the host, so the guest sees changes made on
         * the host at once; reads take the largest requests. The guest cannot {@code mmap} a file of the
         * share {@code MAP_SHARED} (ENODEV); {@code MAP_PRIVATE}, as for programs and libraries, works.
         */
        NONE,
        /** Names, attributes and file data for a day, across opens: for a directory only the guest changes; the fastest. */
        ALWAYS;

        /** The mode's name in the config file, the API and {@code run --share}: {@code auto}, {@code none} or {@code always}. */
        public String value() {
            return name().toLowerCase(Locale.ROOT);
        }

        /**
         * The mode named {@code value} ({@code auto}, {@code none} or {@code always}).
         *
         * @throws IllegalArgumentException naming the modes, for any other value
         */
        public static Cache of(String value) {
            return Arrays.stream(values()).filter(c -> c.value().equals(value)).findFirst()
                    .orElseThrow(() -> new IllegalArgumentException("'" + value + "' is not a cache mode: use auto, none or always"));
        }
    }

    public SharedFolder {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(tag, "tag");
        Objects.requireNonNull(cache, "cache");
    }

    /** A share with {@link Cache#AUTO}. */
    public SharedFolder(Path path, String tag, boolean readOnly) {
        this(path, tag, readOnly, Cache.AUTO);
    }
}
