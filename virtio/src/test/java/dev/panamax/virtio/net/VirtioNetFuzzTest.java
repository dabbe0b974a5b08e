package dev.panamax.virtio.net;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.virtio.FuzzedRequests;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.vm.GuestMemoryException;
import java.util.EnumSet;
import org.junit.jupiter.api.AfterAll;

/**
 * Frames the guest transmits, from a fuzzer's input ({@link FuzzedRequests} frames them): each a
 * virtio-net header with any flags, segmentation type and checksum offsets, then the frame, on the
 * transmit queue of a device that offers and negotiated every offload. A frame the header does not
 * allow is dropped and counted; only a malformed chain may throw.
 */
class VirtioNetFuzzTest {
    private static final FakeBackend BACKEND = new FakeBackend(EnumSet.allOf(NetOffload.class));
    /** One device for every input: transmitting keeps no state but counts. */
    private static final FuzzedRequests TRANSMIT = new FuzzedRequests(
            new VirtioNet("fuzz", MacAddress.parse("52:54:00:12:34:56"), BACKEND, FuzzedRequests.QUEUE_SIZE), VirtioNet.TX);

    @AfterAll
    static void closeDevice() {
        TRANSMIT.close();
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
}
