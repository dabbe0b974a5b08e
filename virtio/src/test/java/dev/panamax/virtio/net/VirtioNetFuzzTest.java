package dev.panamax.virtio.net;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.virtio.FuzzedRequests;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.vm.GuestMemoryException;
import java.util.EnumSet;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;

/**
 * Frames the guest transmits, from a fuzzer's input ({@link FuzzedRequests} frames them): each a
 * virtio-net header with any flags, segmentation type and checksum offsets, then the frame, on the
 * transmit queue of a device that offers and negotiated every offload. A frame the header does not
 * allow is dropped and counted; only a malformed chain may throw. And commands on the control
 * queue: any class and command, with or without data; each is answered OK or ERR, and only a chain
 * without the 2-byte header or a byte for the answer may throw.
 */
class VirtioNetFuzzTest {
    private static final FakeBackend BACKEND = new FakeBackend(EnumSet.allOf(NetOffload.class));
    /** One device for every input: transmitting keeps no state but counts. */
    private static final FuzzedRequests TRANSMIT = new FuzzedRequests(
            new VirtioNet("fuzz", MacAddress.parse("52:54:00:12:34:56"), BACKEND, FuzzedRequests.QUEUE_SIZE), VirtioNet.TX);
    /** Another device for the control queue: commands keep no state but the announce bit. */
    private static final FuzzedRequests CONTROL = new FuzzedRequests(
            new VirtioNet("fuzz-ctrl", MacAddress.parse("52:54:00:12:34:57"), new FakeBackend(Set.of()), FuzzedRequests.QUEUE_SIZE),
            VirtioNet.CTRL);

    @AfterAll
    static void closeDevice() {
        TRANSMIT.close();
        CONTROL.close();
    }

    @FuzzTest
    void transmittedFrames(byte[] input) {
        try {
            TRANSMIT.serve(input);
        } catch (VirtioProtocolException | GuestMemoryException refused) {
            // the documented answer to a request the device cannot drop
        } finally {
            BACKEND.sent.clear();
        }
    }

    @FuzzTest
    void controlCommands(byte[] input) {
        try {
            CONTROL.serve(input);
        } catch (VirtioProtocolException | GuestMemoryException refused) {
            // the documented answer to a chain without the header or the answer byte
        }
    }
}
