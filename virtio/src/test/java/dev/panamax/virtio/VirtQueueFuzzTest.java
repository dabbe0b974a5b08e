package dev.panamax.virtio;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.sys.MappedMemory;
import dev.panamax.vm.GuestMemory;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A split virtqueue over guest memory the fuzzer wrote whole: descriptor table, rings and indirect
 * tables are wherever its addresses say. Only {@link VirtioProtocolException} may come out of the
 * queue, and every chain it hands out must keep the promises of {@link DescriptorChain}.
 */
class VirtQueueFuzzTest {
    /** The largest queue the fuzzer may ask for; it may ask for more, which must be refused. */
    private static final int MAX_SIZE = 256;
    /** Guest RAM of two regions with a hole between, as below and above a PCI hole: [0, 8 KiB) and [12 KiB, 16 KiB). */
    private static final long LOW_END = 0x2000;
    private static final long HIGH_START = 0x3000;
    private static final long HIGH_END = 0x4000;
    private static final int HEADER_BYTES = 12;
    /** At most this many bytes are copied through a chain each way: a chain may name the same 4 KiB page 256 times. */
    private static final int MAX_COPY = 4096;
    private static final GuestMemory MEMORY = new GuestMemory();

    static {
        MEMORY.addRegion(0, MappedMemory.anonymous(LOW_END));
        MEMORY.addRegion(HIGH_START, MappedMemory.anonymous(HIGH_END - HIGH_START));
    }

    private final byte[] copy = new byte[MAX_COPY];
    private final MemorySegment[] parts = new MemorySegment[MAX_SIZE];

    /**
     * The input: a 12-byte header, then guest memory from address 0 on (the hole skipped):
     * <pre>
     *   u8    size: 1 &lt;&lt; (b &amp; 15), or b &amp; 0x7f when bit 7 is set (not a power of two, 0)
     *   u8    bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 resume at the position below instead of creating
     *   le16  descriptor table, le16 available ring, le16 used ring (guest addresses)
     *   le16  last available index, le16 used index (a resumed queue's position)
     * </pre>
     */
    @FuzzTest
    void chainsFromGuestMemory(byte[] input) {
        if (input.length < HEADER_BYTES) {
            return;
        }
        ByteBuffer header = ByteBuffer.wrap(input, 0, HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        int sizeByte = header.get() & 0xff;
        int size = (sizeByte & 0x80) != 0 ? sizeByte & 0x7f : 1 << (sizeByte & 15);
        int flags = header.get() & 0xff;
        QueueSettings settings = new QueueSettings(MAX_SIZE);
        settings.setSize(size);
        settings.setDescTable(Short.toUnsignedLong(header.getShort()));
        settings.setAvailRing(Short.toUnsignedLong(header.getShort()));
        settings.setUsedRing(Short.toUnsignedLong(header.getShort()));
        int lastAvail = Short.toUnsignedInt(header.getShort());
        int usedIdx = Short.toUnsignedInt(header.getShort());
        fillMemory(input, HEADER_BYTES);

        boolean eventIdx = (flags & 1) != 0;
        boolean indirect = (flags & 2) != 0;
        VirtQueue queue;
        try {
            if ((flags & 4) != 0) {
                String problem = VirtQueue.geometryProblem(0, size, settings.descTable(), settings.availRing(), settings.usedRing(),
                        MAX_SIZE, MEMORY);
                if (problem != null) {
                    return;
                }
                queue = VirtQueue.resume(0, new VirtQueue.Geometry(size, settings.descTable(), settings.availRing(), settings.usedRing()),
                        new VirtQueue.Position(lastAvail, usedIdx, usedIdx), MEMORY, eventIdx, indirect);
            } else {
                queue = VirtQueue.create(0, settings, MAX_SIZE, MEMORY, eventIdx, indirect);
            }
        } catch (VirtioProtocolException refused) {
            return;
        }
        DescriptorChain chain = queue.newChain();
        try {
            // The available index may run at most the queue size ahead, so this takes every chain there is and then some.
            for (int i = 0; i < 2 * size + 2; i++) {
                if (!queue.pop(chain)) {
                    queue.armNotification();
                    continue;
                }
                checkChain(chain, size);
                queue.addUsed(chain.head(), (int) Math.min(chain.writableLength(), MAX_COPY));
                queue.needsInterrupt();
            }
        } catch (VirtioProtocolException refused) {
            // a malformed ring or chain, as documented
        }
    }

    /** Lays {@code input[from..]} out in guest memory from address 0, the rest zeros: the same memory for the same input. */
    private static void fillMemory(byte[] input, int from) {
        int lowBytes = (int) Math.min(LOW_END, input.length - from);
        MEMORY.slice(0, LOW_END).fill((byte) 0);
        MEMORY.slice(HIGH_START, HIGH_END - HIGH_START).fill((byte) 0);
        MEMORY.write(0, input, from, lowBytes);
        int highBytes = (int) Math.min(HIGH_END - HIGH_START, input.length - from - lowBytes);
        if (highBytes > 0) {
            MEMORY.write(HIGH_START, input, from + lowBytes, highBytes);
        }
    }

    /** What a chain promises its device, and that copying through it stays inside it. */
    private void checkChain(DescriptorChain chain, int size) {
        assertThat(chain.count()).isBetween(1, size);
        assertThat(chain.head()).isBetween(0, size - 1);
        long readable = 0;
        long writable = 0;
        for (int i = 0; i < chain.count(); i++) {
            assertThat(chain.length(i)).isBetween(1L, 0xffff_ffffL);
            assertThat(MEMORY.contains(chain.address(i), chain.length(i))).as("buffer %d inside guest memory", i).isTrue();
            if (i < chain.readableCount()) {
                readable += chain.length(i);
            } else {
                writable += chain.length(i);
            }
        }
        assertThat(chain.readableLength()).isEqualTo(readable);
        assertThat(chain.writableLength()).isEqualTo(writable);
        assertThat(readable + writable).isLessThanOrEqualTo(0xffff_ffffL);

        int in = (int) Math.min(readable, MAX_COPY);
        chain.read(readable - in, copy, 0, in);
        chain.readableParts(readable / 2, parts, 0);
        int out = (int) Math.min(writable, MAX_COPY);
        chain.write(writable - out, copy, 0, out);
        chain.writableParts(writable / 2, parts, 0);
        if (writable > 0) {
            chain.writeLastByte((byte) 0);
        }
    }
}
