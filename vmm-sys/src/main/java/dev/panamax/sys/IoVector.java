package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * A reusable array of {@code struct iovec} in native memory, for {@code preadv(2)} and {@code
 * pwritev(2)} straight between a file and ranges of native memory (a guest's buffers) that are added
 * as a mapping and an offset into it: a transfer allocates nothing, where a {@code MemorySegment}
 * per buffer and an arena per call cost as much as the kernel's copy of a 1 MiB read into 256 guest
 * pages when the JVM runs C1 only, as it does in the rig. For one thread at a time; its native memory
 * goes with the object.
 */
public final class IoVector {
    private static final long ENTRY = Libc.IOVEC.byteSize();

    /**
     * The entries as pairs of base address and length, copied into {@link #iov} in bulk before each
     * call: with C1, one segment access per field (what a loop of {@code iov.set} does) cost as much as
     * the transfer's own work.
     */
    private final long[] entries;
    private final MemorySegment iov;
    private final MemorySegment callState;
    private final int capacity;
    private int count;
    private long bytes;
    /**
     * The mapping of the last buffer added, with its address and size (a request's buffers are all in
     * one mapping, mostly): a cold JVM interprets the calls that ask a segment for them, for every buffer.
     */
    private MemorySegment checkedMapping;
    private long checkedAddress;
    private long checkedSize;

    /** Room for {@code capacity} buffers. */
    public IoVector(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("an I/O vector of " + capacity + " entries");
        }
        if (ENTRY != 2 * Long.BYTES || Libc.IOV_BASE != 0 || Libc.IOV_LEN != Long.BYTES) {
            throw new AssertionError("struct iovec is not {base, length} of 8 bytes each");
        }
        Arena arena = Arena.ofAuto();
        this.entries = new long[2 * capacity];
        this.iov = arena.allocate(Libc.IOVEC, Math.min(capacity, Libc.IOV_MAX));
        this.callState = Libc.allocateCallState(arena);
        this.capacity = capacity;
    }

    /** Empties the vector. */
    public void clear() {
        count = 0;
        bytes = 0;
        checkedMapping = null;
    }

    /**
     * Appends the buffer {@code [offset, offset + length)} of native memory {@code mapping}, which
     * must stay mapped until the transfer; an empty one adds nothing.
     */
    public void add(MemorySegment mapping, long offset, long length) {
        if (mapping != checkedMapping) {
            if (!mapping.isNative()) {
                throw new IllegalArgumentException("vectored I/O needs native memory, and this buffer is on the Java heap");
            }
            checkedMapping = mapping;
            checkedAddress = mapping.address();
            checkedSize = mapping.byteSize();
        }
        if (!mapping.scope().isAlive()) {
            throw new IllegalStateException("vectored I/O into memory that is no longer mapped");
        }
        Objects.checkFromIndexSize(offset, length, checkedSize);
        if (length == 0) {
            return;
        }
        if (count == capacity) {
            throw new IllegalStateException("the I/O vector holds " + capacity + " buffers already");
        }
        entries[2 * count] = checkedAddress + offset;
        entries[2 * count + 1] = length;
        count++;
        bytes += length;
    }

    /** The buffers it has room for. */
    public int capacity() {
        return capacity;
    }

    /** Its buffers. */
    public int count() {
        return count;
    }

    /** The bytes its buffers hold. */
    public long bytes() {
        return bytes;
    }

    /** Keeps only the first {@code limit} bytes of its buffers (all of them when it holds no more). */
    public void truncate(long limit) {
        if (limit < 0) {
            throw new IllegalArgumentException("a limit of " + limit + " bytes");
        }
        if (limit >= bytes) {
            return;
        }
        long left = limit;
        int kept = 0;
        while (left > 0) {
            long length = Math.min(entries[2 * kept + 1], left);
            entries[2 * kept + 1] = length;
            left -= length;
            kept++;
        }
        count = kept;
        bytes = limit;
    }

    /**
     * {@code preadv(2)} (or {@code pwritev(2)} when {@code write}) of its buffers in turn from file
     * {@code offset} on descriptor {@code fd}, in calls of at most {@link Libc#IOV_MAX} buffers,
     * resuming after short transfers and EINTR; returns the bytes moved, fewer than it holds only when
     * a read meets the end of the file. Empties the vector. {@code what} names the file in errors.
     */
    long transfer(boolean write, int fd, Object what, long offset) throws NativeIoException {
        long total = 0;
        int next = 0; // the first buffer not yet fully moved
        while (next < count) {
            int n = Math.min(count - next, Libc.IOV_MAX);
            MemorySegment.copy(entries, 2 * next, iov, JAVA_LONG, 0, 2 * n);
            long moved = Libc.positionalVectorRaw(callState, write, fd, iov, n, offset);
            if (moved < 0) {
                int errno = Libc.errno(callState);
                if (errno == Libc.EINTR) {
                    continue;
                }
                clear();
                throw new NativeIoException((write ? "pwritev(" : "preadv(") + what + ")", errno);
            }
            if (moved == 0) {
                if (write) {
                    clear();
                    throw new NativeIoException("pwritev(" + what + ") wrote nothing", 0);
                }
                break; // end of file
            }
            total += moved;
            offset += moved;
            // Step past the buffers this call filled; a short transfer resumes inside one.
            while (next < count && moved >= entries[2 * next + 1]) {
                moved -= entries[2 * next + 1];
                next++;
            }
            if (moved > 0) {
                entries[2 * next] += moved;
                entries[2 * next + 1] -= moved;
            }
        }
        clear();
        return total;
    }
}
