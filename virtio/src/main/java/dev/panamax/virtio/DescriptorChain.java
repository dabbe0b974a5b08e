package dev.panamax.virtio;

import dev.panamax.sys.IoVector;
import dev.panamax.vm.GuestMemory;
import java.lang.foreign.MemorySegment;

/**
 * One request taken from a {@link VirtQueue}: its descriptors flattened (indirect tables expanded),
 * device-readable ones first, then device-writable ones. Every buffer was checked to lie inside guest
 * memory when the chain was taken. One object per queue, refilled for each request, so the hot path
 * allocates nothing.
 *
 * <p>Offsets into the readable (or writable) part count from its first byte, across descriptor
 * boundaries: a device must not assume how the driver framed a request.
 */
public final class DescriptorChain {
    private final GuestMemory memory;
    private final long[] addresses;
    private final long[] lengths;
    private int head;
    private int count;
    private int readableCount;
    private long readableLength;
    private long writableLength;

    DescriptorChain(GuestMemory memory, int capacity) {
        this.memory = memory;
        this.addresses = new long[capacity];
        this.lengths = new long[capacity];
    }

    void clear(int head) {
        this.head = head;
        count = 0;
        readableCount = 0;
        readableLength = 0;
        writableLength = 0;
    }

    /** Appends a buffer the caller has checked; readable ones must all come before writable ones. */
    void add(long address, long length, boolean writable) {
        addresses[count] = address;
        lengths[count] = length;
        count++;
        if (writable) {
            writableLength += length;
        } else {
            readableCount++;
            readableLength += length;
        }
    }

    /** The index of the chain's first descriptor, which the used ring reports back. */
    public int head() {
        return head;
    }

    /** Number of buffers, readable and writable. */
    public int count() {
        return count;
    }

    /** Buffers {@code [0, readableCount())} are device-readable, the rest device-writable. */
    public int readableCount() {
        return readableCount;
    }

    public long address(int i) {
        return addresses[i];
    }

    /** Length in bytes, 1 to 2^32-1. */
    public long length(int i) {
        return lengths[i];
    }

    public long readableLength() {
        return readableLength;
    }

    public long writableLength() {
        return writableLength;
    }

    /** Copies {@code length} bytes of the readable part, from {@code offset}, into {@code target}. */
    public void read(long offset, byte[] target, int targetOffset, int length) {
        copy(false, offset, target, null, targetOffset, length);
    }

    /** Copies {@code source[sourceOffset, +length)} into the writable part at {@code offset}. */
    public void write(long offset, byte[] source, int sourceOffset, int length) {
        copy(true, offset, source, null, sourceOffset, length);
    }

    /** Copies {@code length} bytes of the readable part, from {@code offset}, into native memory {@code target}. */
    public void read(long offset, MemorySegment target, long targetOffset, long length) {
        copy(false, offset, null, target, targetOffset, length);
    }

    /** Copies {@code source[sourceOffset, +length)} into the writable part at {@code offset}. */
    public void write(long offset, MemorySegment source, long sourceOffset, long length) {
        copy(true, offset, null, source, sourceOffset, length);
    }

    /**
     * Places the guest's own buffers holding the readable part from {@code offset} on into {@code
     * parts} from index {@code start}, without copying; returns how many it placed. {@code parts}
     * needs room for every buffer of the chain.
     */
    public int readableParts(long offset, MemorySegment[] parts, int start) {
        return parts(false, offset, parts, start);
    }

    /** The writable twin of {@link #readableParts}: the guest's buffers of the writable part from {@code offset} on. */
    public int writableParts(long offset, MemorySegment[] parts, int start) {
        return parts(true, offset, parts, start);
    }

    /**
     * Appends the guest's buffers of the writable part from {@code offset} on to {@code vector}, for a
     * transfer into them with no view object per buffer ({@link #writableParts} makes one each).
     */
    public void addWritableTo(IoVector vector, long offset) {
        if (offset < 0 || offset > writableLength) {
            throw new IndexOutOfBoundsException("offset " + offset + " outside a writable part of " + writableLength + " bytes");
        }
        for (int i = readableCount; i < count; i++) {
            if (offset >= lengths[i]) {
                offset -= lengths[i];
                continue;
            }
            memory.addWritable(vector, addresses[i] + offset, lengths[i] - offset);
            offset = 0;
        }
    }

    private int parts(boolean writable, long offset, MemorySegment[] parts, int start) {
        long partLength = writable ? writableLength : readableLength;
        if (offset < 0 || offset > partLength) {
            throw new IndexOutOfBoundsException("offset " + offset + " outside a " + (writable ? "writable" : "readable")
                    + " part of " + partLength + " bytes");
        }
        int placed = 0;
        for (int i = writable ? readableCount : 0; i < (writable ? count : readableCount); i++) {
            if (offset >= lengths[i]) {
                offset -= lengths[i];
                continue;
            }
            parts[start + placed++] = memory.slice(addresses[i] + offset, lengths[i] - offset);
            offset = 0;
        }
        return placed;
    }

    /** Between the chain and either {@code array} or {@code segment}, whichever is not null. */
    private void copy(boolean toGuest, long offset, byte[] array, MemorySegment segment, long otherOffset, long length) {
        long partLength = toGuest ? writableLength : readableLength;
        if (offset < 0 || length < 0 || offset > partLength - length) {
            throw new IndexOutOfBoundsException("range [" + offset + ", +" + length + ") outside a part of " + partLength + " bytes");
        }
        long done = 0;
        for (int i = toGuest ? readableCount : 0; done < length; i++) {
            if (offset >= lengths[i]) {
                offset -= lengths[i];
                continue;
            }
            long n = Math.min(lengths[i] - offset, length - done);
            long address = addresses[i] + offset;
            if (array != null) {
                if (toGuest) {
                    memory.write(address, array, (int) (otherOffset + done), (int) n);
                } else {
                    memory.read(address, array, (int) (otherOffset + done), (int) n);
                }
            } else if (toGuest) {
                MemorySegment.copy(segment, otherOffset + done, memory.slice(address, n), 0, n);
            } else {
                MemorySegment.copy(memory.slice(address, n), 0, segment, otherOffset + done, n);
            }
            done += n;
            offset = 0;
        }
    }

    /** Writes the last byte of the writable part (where virtio-blk, for one, puts its status). */
    public void writeLastByte(byte value) {
        if (writableLength == 0) {
            throw new IllegalStateException("the chain has no writable buffer");
        }
        memory.writeByte(addresses[count - 1] + lengths[count - 1] - 1, value);
    }
}
