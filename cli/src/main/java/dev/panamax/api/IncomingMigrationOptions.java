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
 */
public record IncomingMigrationOptions(String address, OutputStream console, boolean stayPaused, Map<String, String> networkOverrides) {
    public IncomingMigrationOptions {
        Objects.requireNonNull(address, "address");
        Objects.requireNonNull(console, "console");
        networkOverrides = Map.copyOf(networkOverrides);
    }

    /** Listen at {@code address}, the console nowhere, the guest running on arrival, no overrides. */
    public static IncomingMigrationOptions at(String address) {
        return new IncomingMigrationOptions(address, OutputStream.nullOutputStream(), false, Map.of());
    }

    public IncomingMigrationOptions console(OutputStream stream) {
        return new IncomingMigrationOptions(address, stream, stayPaused, networkOverrides);
    }

    public IncomingMigrationOptions stayPaused(boolean paused) {
        return new IncomingMigrationOptions(address, console, paused, networkOverrides);
    }

    /** The interface {@code id} uses the host's tap {@code hostDevice} here. */
    public IncomingMigrationOptions networkOverride(String id, String hostDevice) {
        Map<String, String> all = new LinkedHashMap<>(networkOverrides);
        all.put(Objects.requireNonNull(id, "id"), Objects.requireNonNull(hostDevice, "hostDevice"));
        return new IncomingMigrationOptions(address, console, stayPaused, all);
    }
}
