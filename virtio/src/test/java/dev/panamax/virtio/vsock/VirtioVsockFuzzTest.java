package dev.panamax.virtio.vsock;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.virtio.FuzzedRequests;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.vm.GuestMemoryException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * Packets the guest sends, from a fuzzer's input ({@link FuzzedRequests} frames them): each a vsock
 * header with any CIDs, ports, operation, flags and credit, then its payload, on the transmit queue.
 * A host program listens on port {@value #HOST_PORT}, so the guest's REQUESTs there connect and its
 * data flows; other ports refuse. A malformed packet is dropped or reset; only a malformed chain may throw.
 */
class VirtioVsockFuzzTest {
    static final int HOST_PORT = 1234;
    @TempDir
    static Path dir;
    /** The host side of the guest's connections, taken so that the listener's backlog never fills; closed after each input. */
    private static final List<SocketChannel> ACCEPTED = new ArrayList<>();
    private static ServerSocketChannel listener;

    @BeforeAll
    static void listen() throws IOException {
        listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        listener.bind(UnixDomainSocketAddress.of(uds() + "_" + HOST_PORT));
        Thread.ofPlatform().daemon().name("vsock-fuzz-host").start(() -> {
            try {
                while (true) {
                    SocketChannel accepted = listener.accept();
                    synchronized (ACCEPTED) {
                        ACCEPTED.add(accepted);
                    }
                }
            } catch (IOException closed) {
                // stopListening closed the listener
            }
        });
    }

    @AfterAll
    static void stopListening() throws IOException {
        if (transmit != null) {
            transmit.close();
            transmit = null;
        }
        listener.close();
    }

    /** The device's socket; nothing may be there when a device is made, and closing the device removes it. */
    private static Path uds() {
        return dir.resolve("v.sock");
    }

    /** The device of every input (making one, with its socket and thread, cost more than most inputs). */
    private static FuzzedRequests transmit;

    /**
     * Its connections are state that one input must not leave to the next: the driver resets the
     * device after each input, which drops them all, and the host closes its ends.
     */
    @FuzzTest
    void transmittedPackets(byte[] input) throws IOException {
        synchronized (VirtioVsockFuzzTest.class) {
            if (transmit == null) transmit = new FuzzedRequests(new VirtioVsock("fuzz", 3, uds(), FuzzedRequests.QUEUE_SIZE), VirtioVsock.TX);
        }
        try {
            transmit.serve(input);
        } catch (VirtioProtocolException | GuestMemoryException refused) {
            // the documented answer to a packet the device cannot drop or reset
        } finally {
            transmit.reset();
            synchronized (ACCEPTED) {
                for (SocketChannel c : ACCEPTED) {
                    c.close();
                }
                ACCEPTED.clear();
            }
        }
    }
}
