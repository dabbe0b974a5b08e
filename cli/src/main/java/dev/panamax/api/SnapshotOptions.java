package dev.panamax.api;

import java.nio.file.Path;
import java.util.Objects;

/**
 * What {@link VirtualMachine#snapshot} writes: a state file (the VM's configuration, vCPUs,
 * interrupt controllers, clock and devices, checksummed) and a memory file (guest RAM).
 *
 * @param statePath the state file, created or replaced
 * @param memoryPath the memory file, created or replaced (a diff snapshot writes only the pages
 *     changed since the last snapshot, at their places in a file of the full size, holes elsewhere)
 * @param diff only the pages written since the previous snapshot, which needs dirty-page tracking
 *     ({@link VirtualMachine.Builder#trackDirtyPages}); restore it from its base's memory file with
 *     this one {@linkplain VirtualMachine#mergeMemory merged} onto it
 * @param disks also take an internal snapshot of every writable drive (each must be a qcow2
 *     image), which a restore applies, so that memory and disks come back consistent
 */
public record SnapshotOptions(Path statePath, Path memoryPath, boolean diff, boolean disks) {
    public SnapshotOptions {
        Objects.requireNonNull(statePath, "statePath");
        Objects.requireNonNull(memoryPath, "memoryPath");
    }

    /** All of guest memory. */
    public static SnapshotOptions full(Path statePath, Path memoryPath) {
        return new SnapshotOptions(statePath, memoryPath, false, false);
    }

    /** The pages written since the previous snapshot. */
    public static SnapshotOptions diff(Path statePath, Path memoryPath) {
        return new SnapshotOptions(statePath, memoryPath, true, false);
    }

    /** These options, with a qcow2 snapshot of every writable drive taken too. */
    public SnapshotOptions withDisks() {
        return new SnapshotOptions(statePath, memoryPath, diff, true);
    }
}
