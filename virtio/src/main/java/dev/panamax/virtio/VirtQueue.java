package dev.panamax.virtio;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import dev.panamax.vm.GuestMemory;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

/**
 * The device side of one split virtqueue (VIRTIO 1.x, 2.7): takes descriptor chains from the
 * available ring and returns them on the used ring. Used by the queue's one I/O thread only.
 *
 * <p>Everything the guest wrote is checked before use: the available index may not run more than
 * the queue size ahead, heads and {@code next} fields must be inside their table, chains (indirect
 * tables included) may not be longer than the queue, every buffer must lie in guest memory and be
 * non-empty, writable buffers come last. A violation throws {@link VirtioProtocolException}.
 *
 * <p>Memory ordering with the driver (on other CPUs): the available index is read with acquire
 * before the ring entries and descriptors it publishes; used entries are written before the used
 * index is stored with release; a full fence separates a store the driver polls (used index,
 * avail_event) from the load of what the driver wrote to decide (used_event, flags, available index).
 */
public final class VirtQueue {
    static final int DESC_F_NEXT = 1;
    static final int DESC_F_WRITE = 2;
    static final int DESC_F_INDIRECT = 4;
    static final int AVAIL_F_NO_INTERRUPT = 1;
    static final int DESCRIPTOR_SIZE = 16;
    /** The largest queue a split ring can have (its indices are 16-bit). */
    public static final int MAX_SIZE = 32768;

    // Aligned 16-bit accesses, for the indices the guest shares: acquire/release need alignment,
    // which the ring address checks guarantee (avail ring 2-byte, used ring 4-byte aligned).
    private static final VarHandle INDEX = JAVA_SHORT.varHandle();

    /**
     * The store of the used ring's idx field, which hands the used entries before it to the driver.
     * Queues use {@link #RELEASE_STORE}; a test passes one that records each store and what the ring
     * held when it was made, which memory contents alone cannot show.
     */
    @FunctionalInterface
    interface UsedIndexStore {
        void store(MemorySegment usedRing, short usedIdx);
    }

    /** With release: the used entries written before it are visible to the driver first. */
    static final UsedIndexStore RELEASE_STORE = (usedRing, usedIdx) -> INDEX.setRelease(usedRing, 2L, usedIdx);

    private final int index;
    private final int size;
    private final GuestMemory memory;
    private final long descAddress;
    private final long availAddress;
    private final long usedAddress;
    private final MemorySegment descTable;
    private final MemorySegment availRing;
    private final MemorySegment usedRing;
    private final boolean eventIdx;
    private final boolean indirect;
    private final UsedIndexStore usedIndexStore;
    /**
     * An indirect table's descriptors as {address, len | flags << 32 | next << 48} pairs, copied out of
     * guest memory in one bulk copy. A cold JVM interprets its first few hundred requests (seconds under
     * the rig's software CPU), and there one segment access per field is dear: a 1 MiB virtio-fs READ
     * (258 descriptors) cost 610 us beyond its readv's 270 interpreted, 140 with the copy (and {@code
     * IoVector} asking a mapping for its address once); {@code VirtioFsBenchmark} with {@code
     * BENCH_JIT=-Xint}. Made at the first indirect table, for the largest one.
     */
    private long[] indirectWords;
    private int lastAvail;      // free-running 16-bit index of the next available entry to take
    private int knownAvail;     // the driver's available index as last read
    private int usedIdx;        // free-running 16-bit index of the next used entry
    private int signalledUsed;  // usedIdx when we last decided about an interrupt (EVENT_IDX)

    private VirtQueue(int index, int size, GuestMemory memory, long desc, long avail, long used,
            boolean eventIdx, boolean indirect, UsedIndexStore usedIndexStore) {
        this.index = index;
        this.size = size;
        this.memory = memory;
        this.descAddress = desc;
        this.availAddress = avail;
        this.usedAddress = used;
        this.descTable = memory.readOnlySlice(desc, (long) DESCRIPTOR_SIZE * size);
        this.availRing = memory.readOnlySlice(avail, availRingSize(size));
        this.usedRing = memory.retainedSlice(used, usedRingSize(size));
        this.eventIdx = eventIdx;
        this.indirect = indirect;
        this.usedIndexStore = usedIndexStore;
    }

    /**
     * A queue over the driver's settings, checked: size a power of two up to {@code maxSize}, desc
     * table 16-byte, avail ring 2-byte and used ring 4-byte aligned, each wholly in guest memory.
     *
     * @throws VirtioProtocolException naming the bad setting
     */
    static VirtQueue create(int index, QueueSettings settings, int maxSize, GuestMemory memory,
            boolean eventIdx, boolean indirect) {
        return create(index, settings, maxSize, memory, eventIdx, indirect, RELEASE_STORE);
    }

    /** {@link #create(int, QueueSettings, int, GuestMemory, boolean, boolean)} with the used index stored by {@code usedIndexStore}. */
    static VirtQueue create(int index, QueueSettings settings, int maxSize, GuestMemory memory,
            boolean eventIdx, boolean indirect, UsedIndexStore usedIndexStore) {
        int size = settings.size();
        long desc = settings.descTable();
        long avail = settings.availRing();
        long used = settings.usedRing();
        String problem = geometryProblem(index, size, desc, avail, used, maxSize, memory);
        if (problem != null) {
            throw new VirtioProtocolException(problem);
        }
        VirtQueue queue = new VirtQueue(index, size, memory, desc, avail, used, eventIdx, indirect, usedIndexStore);
        queue.usedRing.set(JAVA_SHORT_UNALIGNED, 0, (short) 0); // flags: we never ask the driver not to notify
        usedIndexStore.store(queue.usedRing, (short) 0);
        return queue;
    }

    /**
     * A queue as a snapshot left it: the rings where they were, already in use, so nothing is
     * written to them; the device goes on taking entries at {@code position.lastAvail()} and using
     * them at {@code position.usedIdx()}. The caller checked the geometry with {@link #geometryProblem}.
     */
    static VirtQueue resume(int index, Geometry geometry, Position position, GuestMemory memory, boolean eventIdx, boolean indirect) {
        VirtQueue queue = new VirtQueue(index, geometry.size(), memory, geometry.descTable(), geometry.availRing(), geometry.usedRing(),
                eventIdx, indirect, RELEASE_STORE);
        queue.lastAvail = position.lastAvail();
        queue.knownAvail = position.lastAvail();
        queue.usedIdx = position.usedIdx();
        queue.signalledUsed = position.signalledUsed();
        return queue;
    }

    /**
     * What is wrong with a queue of {@code size} entries at these addresses, or null: the size must be
     * a power of two up to {@code maxSize}, the descriptor table 16-byte, the available ring 2-byte and
     * the used ring 4-byte aligned, each wholly inside guest memory.
     */
    static String geometryProblem(int index, int size, long desc, long avail, long used, int maxSize, GuestMemory memory) {
        if (size <= 0 || size > maxSize || Integer.bitCount(size) != 1) {
            return "queue " + index + ": size " + size + " is not a power of two from 1 to " + maxSize;
        }
        String problem = ringProblem(index, "descriptor table", desc, (long) DESCRIPTOR_SIZE * size, 16, memory);
        if (problem == null) {
            problem = ringProblem(index, "available ring", avail, availRingSize(size), 2, memory);
        }
        if (problem == null) {
            problem = ringProblem(index, "used ring", used, usedRingSize(size), 4, memory);
        }
        return problem;
    }

    private static String ringProblem(int index, String what, long address, long length, int alignment, GuestMemory memory) {
        if (address % alignment != 0 || !memory.contains(address, length)) {
            return String.format("queue %d: %s at 0x%x (%d bytes) is %s", index, what, address, length,
                    address % alignment != 0 ? "not " + alignment + "-byte aligned" : "not inside guest memory");
        }
        return null;
    }

    /** Where a queue's rings are: its size and the guest-physical addresses of its three parts. */
    record Geometry(int size, long descTable, long availRing, long usedRing) {}

    /**
     * How far the device has come through a queue, each a free-running 16-bit index: the next
     * available entry to take, the next used entry to write, and the used index when it last decided
     * about an interrupt (EVENT_IDX).
     */
    record Position(int lastAvail, int usedIdx, int signalledUsed) {}

    /** This queue's rings. */
    Geometry geometry() {
        return new Geometry(size, descAddress, availAddress, usedAddress);
    }

    /** How far the device has come; only while no I/O thread uses the queue (quiesced). */
    Position position() {
        return new Position(lastAvail, usedIdx, signalledUsed);
    }

    /**
     * One line on how far the driver and the device have come, for the report on a guest that hung: an
     * entry the driver made available that the device never took (a notification lost) or took and
     * never used (a request stuck) shows here, and so does a used index the driver's interrupt wish
     * stands behind. Read without the I/O thread's ordering: a diagnosis, not state.
     */
    String describe() {
        int avail = Short.toUnsignedInt((short) INDEX.getAcquire(availRing, 2L));
        int taken = lastAvail;
        int used = usedIdx;
        StringBuilder line = new StringBuilder("queue ").append(index).append(": ").append((avail - taken) & 0xffff)
                .append(" available and not taken, ").append((taken - used) & 0xffff).append(" taken and not used (available ")
                .append(avail).append(", taken ").append(taken).append(", used ").append(used);
        if (eventIdx) {
            line.append(", the driver's used_event ").append(Short.toUnsignedInt(availRing.get(JAVA_SHORT_UNALIGNED, 4 + 2L * size)));
        } else {
            line.append((availRing.get(JAVA_SHORT_UNALIGNED, 0) & AVAIL_F_NO_INTERRUPT) != 0 ? ", interrupts off" : ", interrupts on");
        }
        return line.append(')').toString();
    }

    /**
     * Gives back the last {@code count} chains {@link #pop} took and the device has not used: the
     * next pops take them again. For a device that stops in the middle of filling several chains
     * (virtio-net's mergeable receive buffers) and must not keep them from the driver.
     */
    public void unpop(int count) {
        if (count < 0 || count > ((lastAvail - usedIdx) & 0xffff)) {
            throw new IllegalArgumentException("queue " + index + ": cannot give back " + count + " chains; "
                    + ((lastAvail - usedIdx) & 0xffff) + " are taken and not used");
        }
        lastAvail = (lastAvail - count) & 0xffff;
    }

    private static long availRingSize(int size) {
        return 6 + 2L * size; // flags, idx, ring[size], used_event
    }

    private static long usedRingSize(int size) {
        return 6 + 8L * size; // flags, idx, ring[size] of {id, len}, avail_event
    }

    public int index() {
        return index;
    }

    public int size() {
        return size;
    }

    /** A chain object able to hold any chain of this queue, for {@link #pop}. */
    public DescriptorChain newChain() {
        return new DescriptorChain(memory, size);
    }

    /**
     * Takes the next available chain into {@code chain}.
     *
     * @return false when the driver has made nothing more available
     * @throws VirtioProtocolException for a malformed available ring or chain
     */
    public boolean pop(DescriptorChain chain) {
        if (lastAvail == knownAvail && !refreshAvail()) {
            return false;
        }
        int head = Short.toUnsignedInt(availRing.get(JAVA_SHORT_UNALIGNED, 4 + 2L * (lastAvail & (size - 1))));
        lastAvail = (lastAvail + 1) & 0xffff;
        walk(head, chain);
        return true;
    }

    /** Reads the driver's available index; true when it has entries we have not taken. */
    private boolean refreshAvail() {
        int avail = Short.toUnsignedInt((short) INDEX.getAcquire(availRing, 2L));
        int pending = (avail - lastAvail) & 0xffff;
        if (pending > size) {
            throw new VirtioProtocolException("queue " + index + ": available index " + avail + " is " + pending
                    + " entries ahead of the device, more than the queue size " + size);
        }
        knownAvail = avail;
        return pending != 0;
    }

    private void walk(int head, DescriptorChain chain) {
        chain.clear(head);
        long[] words = null;  // an indirect table's copy once the chain has moved into one; the queue's table until then
        long tableAddress = -1;
        int tableSize = size;
        int next = head;
        boolean writable = false;
        while (true) {
            if (next >= tableSize) {
                throw violation(head, "descriptor index " + next + " is past the end of its "
                        + (tableAddress < 0 ? "queue (size " : "indirect table (entries ") + tableSize + ")");
            }
            long addr;
            long word; // len | flags << 32 | next << 48
            if (words == null) {
                addr = descTable.get(JAVA_LONG_UNALIGNED, (long) DESCRIPTOR_SIZE * next);
                word = descTable.get(JAVA_LONG_UNALIGNED, (long) DESCRIPTOR_SIZE * next + 8);
            } else {
                addr = words[2 * next];
                word = words[2 * next + 1];
            }
            long len = word & 0xffff_ffffL;
            int flags = (int) (word >>> 32) & 0xffff;
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirect) {
                    throw violation(head, "indirect descriptor, but VIRTIO_F_RING_INDIRECT_DESC was not negotiated");
                }
                if (tableAddress >= 0) {
                    throw violation(head, "indirect descriptor inside an indirect table");
                }
                if ((flags & DESC_F_NEXT) != 0) {
                    throw violation(head, "indirect descriptor also has the NEXT flag");
                }
                if (len == 0 || len % DESCRIPTOR_SIZE != 0 || len / DESCRIPTOR_SIZE > size) {
                    throw violation(head, "indirect table of " + len + " bytes: not 1 to " + size + " (the queue size) descriptors of 16 bytes");
                }
                if (!memory.contains(addr, len)) {
                    throw violation(head, String.format("indirect table at 0x%x (%d bytes) is not inside guest memory", addr, len));
                }
                tableAddress = addr;
                tableSize = (int) (len / DESCRIPTOR_SIZE);
                if (indirectWords == null) {
                    indirectWords = new long[2 * size];
                }
                words = indirectWords;
                // A copy also keeps the guest from changing the table while it is walked.
                MemorySegment.copy(memory.readOnlySlice(addr, len), JAVA_LONG_UNALIGNED, 0, words, 0, 2 * tableSize);
                next = 0;
                continue;
            }
            if (chain.count() == size) {
                throw violation(head, "chain is longer than the queue size " + size + " (a loop?)");
            }
            if (len == 0) {
                throw violation(head, "zero-length descriptor");
            }
            if (!memory.contains(addr, len)) {
                throw violation(head, String.format("buffer at 0x%x (%d bytes) is not inside guest memory", addr, len));
            }
            boolean isWritable = (flags & DESC_F_WRITE) != 0;
            if (writable && !isWritable) {
                throw violation(head, "device-readable descriptor after a device-writable one");
            }
            writable = isWritable;
            chain.add(addr, len, isWritable);
            if ((flags & DESC_F_NEXT) == 0) {
                break;
            }
            next = (int) (word >>> 48);
        }
        if (chain.readableLength() + chain.writableLength() > 0xffff_ffffL) {
            throw violation(head, "chain totals " + (chain.readableLength() + chain.writableLength()) + " bytes, more than 2^32-1");
        }
    }

    private VirtioProtocolException violation(int head, String what) {
        return new VirtioProtocolException("queue " + index + ", chain at descriptor " + head + ": " + what);
    }

    /** Returns a chain to the driver: {@code length} bytes were written into its writable buffers. */
    public void addUsed(int head, int length) {
        writeUsed(head, length);
        usedIndexStore.store(usedRing, (short) usedIdx);
    }

    /**
     * Returns {@code count} chains to the driver at once: the driver sees all of their used entries
     * or none, as it must for the buffers of one frame (virtio-net's mergeable receive buffers).
     */
    public void addUsed(int[] heads, int[] lengths, int count) {
        for (int i = 0; i < count; i++) {
            writeUsed(heads[i], lengths[i]);
        }
        usedIndexStore.store(usedRing, (short) usedIdx);
    }

    private void writeUsed(int head, int length) {
        long entry = 4 + 8L * (usedIdx & (size - 1));
        usedRing.set(JAVA_INT_UNALIGNED, entry, head);
        usedRing.set(JAVA_INT_UNALIGNED, entry + 4, length);
        usedIdx = (usedIdx + 1) & 0xffff;
    }

    /**
     * Whether the driver wants an interrupt for the entries used since the last call: with
     * EVENT_IDX when the used index passed its used_event, else unless it set NO_INTERRUPT.
     */
    public boolean needsInterrupt() {
        VarHandle.fullFence(); // our used index store before the load of the driver's wishes
        if (eventIdx) {
            int usedEvent = Short.toUnsignedInt(availRing.get(JAVA_SHORT_UNALIGNED, 4 + 2L * size));
            int old = signalledUsed;
            signalledUsed = usedIdx;
            // vring_need_event: did the index move past used_event in the step old -> usedIdx?
            return ((usedIdx - usedEvent - 1) & 0xffff) < ((usedIdx - old) & 0xffff);
        }
        return (availRing.get(JAVA_SHORT_UNALIGNED, 0) & AVAIL_F_NO_INTERRUPT) == 0;
    }

    /**
     * Before the I/O thread sleeps: with EVENT_IDX asks the driver to notify at the next available
     * entry (avail_event), then tells whether entries arrived meanwhile, which no notification would
     * announce. Without EVENT_IDX the driver notifies for every entry, so there is nothing to arm.
     */
    public boolean armNotification() {
        if (!eventIdx) {
            return false;
        }
        usedRing.set(JAVA_SHORT_UNALIGNED, 4 + 8L * size, (short) lastAvail);
        VarHandle.fullFence(); // avail_event store before the available index load
        return refreshAvail();
    }
}
