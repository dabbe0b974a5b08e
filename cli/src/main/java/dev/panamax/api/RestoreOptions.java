package dev.panamax.api;

import java.io.OutputStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * What {@link VirtualMachine#restore} restores from, and how. The VM comes back with the devices,
 * disks (reopened by path) and network interfaces (taps reopened by name, passt started anew) it
 * had; its memory file is mapped copy-on-write, so the file never changes and one snapshot can be
 * restored many times, concurrently.
 *
 * @param statePath the state file a snapshot wrote
 * @param memoryPath its memory file (for a diff snapshot: its base's, with the diff merged onto it)
 * @param console where the guest's serial output goes from now on (not closed by the VM)
 * @param resume let the guest run at once; otherwise the VM stays paused until {@link VirtualMachine#resume()}
 * @param eagerMemory read all of guest memory before the guest runs, rather than page by page as it touches it
 * @param networkOverrides for a network interface id, the host tap device it uses instead of the saved one
 * @param trackDirtyPages track the pages the guest writes, for diff snapshots of the restored VM
 */
public record RestoreOptions(Path statePath, Path memoryPath, OutputStream console, boolean resume, boolean eagerMemory,
        Map<String, String> networkOverrides, boolean trackDirtyPages) {
    public RestoreOptions {
        Objects.requireNonNull(statePath, "statePath");
        Objects.requireNonNull(memoryPath, "memoryPath");
        Objects.requireNonNull(console, "console");
        networkOverrides = Map.copyOf(networkOverrides);
    }

    /** Restores from these files, resumed, memory on demand, the console nowhere, no overrides. */
    public static RestoreOptions of(Path statePath, Path memoryPath) {
        return new RestoreOptions(statePath, memoryPath, OutputStream.nullOutputStream(), true, false, Map.of(), false);
    }

    public RestoreOptions console(OutputStream stream) {
        return new RestoreOptions(statePath, memoryPath, stream, resume, eagerMemory, networkOverrides, trackDirtyPages);
    }

    public RestoreOptions resume(boolean run) {
        return new RestoreOptions(statePath, memoryPath, console, run, eagerMemory, networkOverrides, trackDirtyPages);
    }

    public RestoreOptions eagerMemory(boolean eager) {
        return new RestoreOptions(statePath, memoryPath, console, resume, eager, networkOverrides, trackDirtyPages);
    }

    public RestoreOptions trackDirtyPages(boolean track) {
        return new RestoreOptions(statePath, memoryPath, console, resume, eagerMemory, networkOverrides, track);
    }

    /** The interface {@code id} uses the host's tap {@code hostDevice} instead of the one it was saved with. */
    public RestoreOptions networkOverride(String id, String hostDevice) {
        Map<String, String> all = new LinkedHashMap<>(networkOverrides);
        all.put(Objects.requireNonNull(id, "id"), Objects.requireNonNull(hostDevice, "hostDevice"));
        return new RestoreOptions(statePath, memoryPath, console, resume, eagerMemory, all, trackDirtyPages);
    }
}
