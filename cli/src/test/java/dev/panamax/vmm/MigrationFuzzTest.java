package dev.panamax.vmm;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.sys.MappedMemory;
import dev.panamax.vm.MemoryMap;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * What a hostile or broken source sends a migration's destination, from a fuzzer's bytes: the
 * stream of messages (magic, type, length, checksum), and the runs of a MEMORY message, which
 * write guest memory at addresses the source gives. A malformed stream or run may only give a
 * {@link MigrationException}.
 */
class MigrationFuzzTest {
    private static final ServerSocketChannel SERVER = listen();

    private static ServerSocketChannel listen() {
        try {
            Path dir = Files.createTempDirectory("migration-fuzz");
            dir.toFile().deleteOnExit();
            ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(dir.resolve("s")));
            dir.resolve("s").toFile().deleteOnExit();
            return server;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The bytes as the whole stream a source sends, then the end of it; the destination reads messages until it fails. */
    @FuzzTest
    void stream(byte[] bytes) throws IOException {
        try (SocketChannel source = SocketChannel.open(SERVER.getLocalAddress());
                MigrationWire wire = new MigrationWire(SERVER.accept(), "the source")) {
            source.write(ByteBuffer.wrap(bytes));
            source.shutdownOutput();
            for (int i = 0; i < 1000; i++) {
                wire.receive(Duration.ofSeconds(10), "a message");
            }
        } catch (MigrationException refused) {
            // the documented answer to anything but a whole, intact message
        }
    }

    /**
     * Two regions of 64 KiB, at guest addresses 0 and 1 MiB. A run outside them must be refused:
     * a write past a region's end would throw from the memory segment's bounds check, which is not
     * the documented answer, so the fuzzer reports it.
     */
    @FuzzTest
    void memoryRuns(byte[] payload) {
        try (MigrationDestination.Incoming incoming = new MigrationDestination.Incoming()) {
            incoming.map = new MemoryMap(List.of(new MemoryMap.Entry(0, 64 << 10, 0), new MemoryMap.Entry(1 << 20, 64 << 10, 64 << 10)));
            incoming.memory.add(MappedMemory.anonymous(64 << 10));
            incoming.memory.add(MappedMemory.anonymous(64 << 10));
            try {
                MigrationDestination.applyPages(ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN), incoming);
            } catch (MigrationException refused) {
                // the documented answer to a malformed run
            }
        }
    }
}
