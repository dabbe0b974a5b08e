package dev.panamax.api;

import dev.panamax.vmm.MigrationDestination;
import dev.panamax.vmm.MigrationException;
import dev.panamax.vmm.VmBuilder;
import java.io.IOException;
import java.io.OutputStream;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.util.function.Consumer;

/**
 * A destination waiting for a live migration, from {@link VirtualMachine#listenForMigration}: it
 * listens from its creation, and {@link #accept} takes one VM. Closing it stops listening (and
 * removes a Unix socket it made).
 */
public final class MigrationListener implements AutoCloseable {
    private final ServerSocketChannel server;
    private final MigrationDestination.Options options;
    private final OutputStream console;
    private final Consumer<String> log;

    MigrationListener(ServerSocketChannel server, IncomingMigrationOptions options, Consumer<String> log) {
        this.server = server;
        this.options = new MigrationDestination.Options(options.networkOverrides(), MigrationDestination.Options.DEFAULT_TIMEOUT,
                options.stayPaused(), options.whenBuilt());
        this.console = options.console();
        this.log = log;
        Thread.ofPlatform().daemon().name("migration-warm-up").start(MigrationDestination::warmUp);
    }

    /**
     * Waits for a source and takes its VM: running if it ran there (unless told to stay paused),
     * else paused.
     *
     * @throws VirtualMachineException when the migration failed; nothing of it is left here, and
     *     the source's guest runs on there
     * @throws IOException when no source could be accepted
     */
    public VirtualMachine accept() throws IOException {
        VmBuilder.Machine machine;
        try {
            machine = MigrationDestination.receive(server, options, console, log);
        } catch (MigrationException e) {
            throw new VirtualMachineException(e.getMessage(), e);
        }
        return new VirtualMachine(machine);
    }

    @Override
    public void close() throws IOException {
        java.net.SocketAddress address = server.isOpen() ? server.getLocalAddress() : null;
        server.close();
        if (address instanceof UnixDomainSocketAddress unix) {
            try {
                Files.deleteIfExists(unix.getPath());
            } catch (java.nio.file.AccessDeniedException e) {
                // a process that gave up its privileges since it listened (run --uid): the socket file stays
            }
        }
    }
}
