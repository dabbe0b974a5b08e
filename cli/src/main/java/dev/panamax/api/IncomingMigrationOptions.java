package dev.panamax.api;

import java.io.OutputStream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * How {@link VirtualMachine#listenForMigration} waits for a VM.
 *
 * @param address where to listen: {@code tcp:HOST:PORT} or {@code unix:PATH}
 * @param console where the guest's serial output goes here (not closed by the VM)
 * @param stayPaused leave the guest paused when it arrives, even if it ran at the source
 * @param networkOverrides for a network interface id, the host tap device it uses here instead of the source's
 * @param whenBuilt run once the VM is built here, everything it uses opened, before the guest runs here (for example to give
 *     up privileges); what it throws fails the migration, and the guest runs on at the source
 */
public record IncomingMigrationOptions(String address, OutputStream console, boolean stayPaused, Map<String, String> networkOverrides,
        Runnable whenBuilt) {
    public IncomingMigrationOptions {
        Objects.requireNonNull(address, "address");
        Objects.requireNonNull(console, "console");
        networkOverrides = Map.copyOf(networkOverrides);
        Objects.requireNonNull(whenBuilt, "whenBuilt");
    }

    /** Listen at {@code address}, the console nowhere, the guest running on arrival, no overrides. */
    public static IncomingMigrationOptions at(String address) {
        return new IncomingMigrationOptions(address, OutputStream.nullOutputStream(), false, Map.of(), () -> {});
    }

    public IncomingMigrationOptions console(OutputStream stream) {
        return new IncomingMigrationOptions(address, stream, stayPaused, networkOverrides, whenBuilt);
    }

    public IncomingMigrationOptions stayPaused(boolean paused) {
        return new IncomingMigrationOptions(address, console, paused, networkOverrides, whenBuilt);
    }

    /** The interface {@code id} uses the host's tap {@code hostDevice} here. */
    public IncomingMigrationOptions networkOverride(String id, String hostDevice) {
        Map<String, String> all = new LinkedHashMap<>(networkOverrides);
        all.put(Objects.requireNonNull(id, "id"), Objects.requireNonNull(hostDevice, "hostDevice"));
        return new IncomingMigrationOptions(address, console, stayPaused, all, whenBuilt);
    }

    /** Runs {@code action} once the VM is built here and before the guest runs here. */
    public IncomingMigrationOptions whenBuilt(Runnable action) {
        return new IncomingMigrationOptions(address, console, stayPaused, networkOverrides, action);
    }
}
