package dev.panamax.virtio.net;

import dev.panamax.sys.Poller;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.Predicate;

/** A frame a backend handed over, its virtio-net header apart. */
record Received(byte[] header, byte[] frame) {
    private static final int PATIENCE = 200;

    /**
     * Receives from {@code backend}, waiting for its descriptor as a device would, until a frame
     * {@code wanted} accepts arrives; others (a kernel's IPv6 chatter) are passed over.
     */
    static Received await(NetBackend backend, MemorySegment buffer, Predicate<byte[]> wanted) {
        try (Poller poller = Poller.create(1)) {
            poller.add(backend.descriptor(), Poller.READABLE, 0);
            for (int passedOver = 0; passedOver < PATIENCE; ) {
                int length = backend.receive(buffer);
                if (length == 0) {
                    poller.await(-1);
                    continue;
                }
                Received received = new Received(buffer.asSlice(0, VirtioNetHeader.BYTES).toArray(ValueLayout.JAVA_BYTE),
                        Frames.frameOf(buffer, length));
                if (wanted.test(received.frame())) {
                    return received;
                }
                passedOver++;
            }
            throw new AssertionError(PATIENCE + " frames came, none of them the one expected");
        }
    }
}
