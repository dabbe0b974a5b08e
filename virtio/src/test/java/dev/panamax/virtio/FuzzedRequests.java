package dev.panamax.virtio;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.MappedMemory;
import dev.panamax.vm.GuestMemory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * For the fuzz targets of devices: lays out a fuzzer's input as requests in well-formed descriptor
 * chains on one queue of a device and has the device serve them on the calling thread, through its
 * own {@link VirtioDevice#serve} loop. What is fuzzed is the device's parsing of the request bytes;
 * {@link VirtQueueFuzzTest} fuzzes the chains themselves.
 *
 * <p>The input is a sequence of requests, each a 5-byte frame and then its readable bytes:
 * <pre>
 *   u8     buffers: bits 0-1 readable buffers - 1, bits 2-3 writable buffers - 1
 *   le16   readable bytes R (cut to what the input has left)
 *   le16   writable bytes W
 *   R bytes, the device-readable part of the request
 * </pre>
 * Each part is split into its buffers in near-equal pieces, so that a device's headers and payloads
 * straddle descriptors as a driver may lay them out. At most {@link #MAX_REQUESTS} requests are laid
 * out; the rest of the input is ignored.
 */
public final class FuzzedRequests implements AutoCloseable {
    public static final int QUEUE_SIZE = 256;
    /** Each request takes up to 8 descriptors of the queue. */
    public static final int MAX_REQUESTS = QUEUE_SIZE / 8;
    public static final int FRAME_BYTES = 5;
    private static final long RINGS = 0;
    private static final long AVAIL = RINGS + 16L * QUEUE_SIZE;
    private static final long USED = AVAIL + 0x1000;
    private static final long BUFFERS = 0x10000;
    /** Room for MAX_REQUESTS requests of 64 KiB readable and 64 KiB writable bytes, each piece 8-byte aligned. */
    private static final long MEMORY_BYTES = BUFFERS + MAX_REQUESTS * 2L * 0x11000;

    private static final long USED_RING_END = USED + 4 + 8L * QUEUE_SIZE + 2;
    /**
     * One mapping under the guest memory of every input of a run: mapping 4 MiB and faulting its pages
     * in again for each input cost more than most devices' parsing. Each {@link #serve} first zeroes
     * what the one before laid out (rings and buffers, the device's writes into them included), so an
     * input finds the memory as a fresh mapping has it. Fuzz targets run one input at a time.
     */
    private static MappedMemory backing;
    /** How many bytes from address 0 the last {@link #serve} laid out. */
    private static long laidOut;

    private final VirtioDevice device;
    private final int queueIndex;
    /** A device's own, over {@link #backing}: what one device's queues retain of it goes with the device. */
    private final GuestMemory memory = new GuestMemory();
    private final QueueSettings settings = new QueueSettings(QUEUE_SIZE);
    private final long[] writableLengths = new long[QUEUE_SIZE];

    /**
     * Connects {@code device} to a guest memory of its own and negotiates every feature it offers,
     * without DRIVER_OK: no I/O thread starts, {@link #serve} runs the queue instead.
     */
    public FuzzedRequests(VirtioDevice device, int queueIndex) {
        this.device = device;
        this.queueIndex = queueIndex;
        synchronized (FuzzedRequests.class) {
            if (backing == null) backing = MappedMemory.anonymous(MEMORY_BYTES);
        }
        memory.addRegion(0, backing);
        device.connect(memory, new CountingInterrupts(device.queueCount()));
        negotiate();
        settings.setSize(QUEUE_SIZE);
        settings.setDescTable(RINGS);
        settings.setAvailRing(AVAIL);
        settings.setUsedRing(USED);
    }

    private void negotiate() {
        device.setStatus(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER);
        device.setDriverFeatures(device.deviceFeatures());
        device.setStatus(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK);
    }

    /**
     * The driver resets the device (status 0) and negotiates again: for a target whose device is too
     * costly to make for each input, between two inputs.
     */
    public void reset() {
        device.setStatus(0);
        negotiate();
    }

    /**
     * Lays out the requests of {@code input} on a fresh queue, has the device serve them all and checks
     * each used entry: a head that was made available, once, and a used length no larger than its chain's
     * writable part.
     *
     * @throws VirtioProtocolException as the device throws it
     */
    public void serve(byte[] input) {
        memory.slice(0, laidOut).fill((byte) 0);
        laidOut = MEMORY_BYTES; // until this layout is done, should it throw
        VirtQueue queue = VirtQueue.create(queueIndex, settings, QUEUE_SIZE, memory, false, true);
        Arrays.fill(writableLengths, -1);
        int requests = 0;
        int descriptor = 0;
        long buffer = BUFFERS;
        for (Frame frame : frames(input)) {
            int head = descriptor;
            int pieces = frame.readablePieces() + frame.writablePieces();
            for (int i = 0; i < pieces; i++) {
                boolean isWritable = i >= frame.readablePieces();
                int partPieces = isWritable ? frame.writablePieces() : frame.readablePieces();
                int piece = isWritable ? i - frame.readablePieces() : i;
                int total = isWritable ? frame.writableLength() : frame.readableLength();
                int length = total / partPieces + (piece == partPieces - 1 ? total % partPieces : 0);
                if (isWritable) {
                    memory.slice(buffer, length).fill((byte) 0);
                } else {
                    memory.write(buffer, input, frame.readableOffset() + piece * (total / partPieces), length);
                }
                boolean last = i == pieces - 1;
                writeDescriptor(descriptor, buffer, length,
                        (isWritable ? VirtQueue.DESC_F_WRITE : 0) | (last ? 0 : VirtQueue.DESC_F_NEXT), descriptor + 1);
                descriptor++;
                buffer = (buffer + length + 7) & ~7L;
            }
            writableLengths[head] = frame.writableLength();
            memory.writeShort(AVAIL + 4 + 2L * requests, (short) head);
            requests++;
        }
        memory.writeShort(AVAIL + 2, (short) requests);
        laidOut = Math.max(buffer, USED_RING_END);
        int published = requests;
        // serve() loops until told to stop: it stops once every request is taken, and the signal lets
        // it through its wait for a notification once.
        device.notifyEvent(queueIndex).signal();
        device.serve(queue, () -> queue.position().lastAvail() != published);
        checkUsed(queue.position().usedIdx());
    }

    /**
     * One request of an input: its readable bytes are {@code input[readableOffset, +readableLength)},
     * laid out in {@code readablePieces} buffers, and then {@code writableLength} writable bytes in
     * {@code writablePieces} buffers (no piece is empty, so a part of n bytes has at most n).
     */
    public record Frame(int readablePieces, int writablePieces, int readableOffset, int readableLength, int writableLength) {}

    /** The requests of {@code input}, at most {@link #MAX_REQUESTS}, as {@link #serve} lays them out. */
    public static List<Frame> frames(byte[] input) {
        List<Frame> frames = new ArrayList<>();
        int at = 0;
        while (frames.size() < MAX_REQUESTS && input.length - at >= FRAME_BYTES) {
            int buffers = input[at] & 0xff;
            int readable = Math.min(le16(input, at + 1), input.length - at - FRAME_BYTES);
            int writable = le16(input, at + 3);
            if (readable == 0 && writable == 0) {
                writable = 1; // a chain has at least one buffer
            }
            frames.add(new Frame(Math.min(1 + (buffers & 3), readable), Math.min(1 + (buffers >> 2 & 3), writable),
                    at + FRAME_BYTES, readable, writable));
            at += FRAME_BYTES + readable;
        }
        return frames;
    }

    private void checkUsed(int used) {
        for (int i = 0; i < used; i++) {
            int head = memory.readInt(USED + 4 + 8L * i);
            long length = Integer.toUnsignedLong(memory.readInt(USED + 8 + 8L * i));
            assertThat(head).as("used entry %d: head", i).isBetween(0, QUEUE_SIZE - 1);
            assertThat(writableLengths[head]).as("used entry %d: head %d was made available once", i, head).isNotNegative();
            assertThat(length).as("used entry %d: used length", i).isLessThanOrEqualTo(writableLengths[head]);
            writableLengths[head] = -1;
        }
    }

    private void writeDescriptor(int index, long address, long length, int flags, int next) {
        long at = RINGS + 16L * index;
        memory.writeLong(at, address);
        memory.writeInt(at + 8, (int) length);
        memory.writeShort(at + 12, (short) flags);
        memory.writeShort(at + 14, (short) next);
    }

    private static int le16(byte[] b, int at) {
        return (b[at] & 0xff) | (b[at + 1] & 0xff) << 8;
    }

    /** Closes the device; the mapping serves the next input's. */
    @Override
    public void close() {
        device.close();
    }
}
