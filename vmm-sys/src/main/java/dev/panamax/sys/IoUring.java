package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

/**
 * An io_uring (io_uring(7)) for one open file, that may do nothing but vectored reads and writes of
 * that file ({@link SparseFile#ioUring}): a device queue hands the kernel a batch of scattered reads and writes with one system
 * call instead of one each.
 *
 * <p>The kernel performs a ring's operations on the ring's behalf, past the seccomp filter of the
 * thread that submits them. So the ring is created disabled, told that its only operations are
 * {@code IORING_OP_READV} and {@code IORING_OP_WRITEV} on registered files, given the one file, and
 * only then enabled; after that it accepts no other operation, file or registration, whatever the
 * thread using it is made to write into its submission queue. A confined thread needs only
 * {@code io_uring_enter}.
 *
 * <p>Used by one thread at a time: {@link #add} a batch, then {@link #submitAndWait} for all of it.
 */
public final class IoUring implements AutoCloseable {
    private static final long SQE_SIZE = IoAbi.IO_URING_SQE.byteSize();
    private static final long CQE_SIZE = IoAbi.IO_URING_CQE.byteSize();
    private static final long IOVEC_SIZE = Libc.IOVEC.byteSize();
    // The rings' indices are shared with the kernel: read with acquire, written with release.
    private static final VarHandle INT = JAVA_INT.varHandle();
    private static final int SETUP = Syscalls.number("io_uring_setup");
    private static final int ENTER = Syscalls.number("io_uring_enter");
    private static final int REGISTER = Syscalls.number("io_uring_register");

    /** The result of one read or write of a batch. */
    @FunctionalInterface
    public interface Completion {
        /**
         * @param tag    what {@link #add} was given
         * @param result the bytes moved (fewer than asked at the end of the file, or for a transfer
         *               the kernel split), or the negated errno
         */
        void done(long tag, int result);
    }

    private final Arena arena = Arena.ofShared();
    private final Fd ring;
    private final String what;
    private final int entries;
    private final MemorySegment rings; // the SQ and CQ rings, one mapping (IORING_FEAT_SINGLE_MMAP)
    private final MemorySegment sqes;
    private final MemorySegment iovecs;
    private final int maxVectors;
    private final long sqTail, sqMask, sqArray, cqHead, cqTail, cqMask, cqes;
    private int queued; // entries added since the last submission
    private int vectorsUsed;

    private IoUring(Fd ring, String what, int entries, MemorySegment rings, MemorySegment sqes, MemorySegment params, int maxVectors) {
        this.ring = ring;
        this.what = what;
        this.entries = entries;
        this.rings = rings;
        this.sqes = sqes;
        this.maxVectors = maxVectors;
        this.iovecs = arena.allocate(Libc.IOVEC, maxVectors);
        sqTail = field(params, "sq_off", "tail");
        sqMask = rings.get(JAVA_INT, field(params, "sq_off", "ring_mask"));
        sqArray = field(params, "sq_off", "array");
        cqHead = field(params, "cq_off", "head");
        cqTail = field(params, "cq_off", "tail");
        cqMask = rings.get(JAVA_INT, field(params, "cq_off", "ring_mask"));
        cqes = field(params, "cq_off", "cqes");
    }

    private static long field(MemorySegment params, String group, String name) {
        long offset = IoAbi.IO_URING_PARAMS.byteOffset(PathElement.groupElement(group), PathElement.groupElement(name));
        return Integer.toUnsignedLong(params.get(JAVA_INT, offset));
    }

    /**
     * A ring of {@code entries} (a power of two, at most 4096) for reads and writes of file {@code fd}
     * (which the caller keeps open and owns), taking at most {@code maxVectors} buffers per batch.
     *
     * @param what names the file in error messages
     * @throws NativeIoException when the kernel has no io_uring (before 5.10, built without it,
     *     {@code kernel.io_uring_disabled}, or a container's seccomp filter refusing it)
     */
    static IoUring forFile(int fd, String what, int entries, int maxVectors) throws NativeIoException {
        if (Integer.bitCount(entries) != 1 || entries > 4096 || maxVectors < 1) {
            throw new IllegalArgumentException("an io_uring of " + entries + " entries and " + maxVectors + " buffers");
        }
        try (Arena setup = Arena.ofConfined()) {
            MemorySegment params = setup.allocate(IoAbi.IO_URING_PARAMS);
            params.set(JAVA_INT, IoAbi.IO_URING_PARAMS.byteOffset(PathElement.groupElement("flags")), IoAbi.IORING_SETUP_R_DISABLED);
            long result = Libc.syscall(SETUP, entries, params.address(), 0, 0, 0, 0);
            if (result < 0) {
                throw new NativeIoException("io_uring_setup(" + what + ")", (int) -result);
            }
            Fd ring = new Fd((int) result, "io_uring (" + what + ")");
            MemorySegment rings = null;
            MemorySegment sqes = null;
            try {
                int features = params.get(JAVA_INT, IoAbi.IO_URING_PARAMS.byteOffset(PathElement.groupElement("features")));
                if ((features & IoAbi.IORING_FEAT_SINGLE_MMAP) == 0) {
                    throw new NativeIoException("io_uring_setup(" + what + "): the kernel maps its rings apart (before Linux 5.4)", Libc.ENOSYS);
                }
                restrictToVectoredIo(ring.fd(), fd, what, setup);
                int sqEntries = params.get(JAVA_INT, 0);
                int cqEntries = params.get(JAVA_INT, 4);
                long ringsSize = Math.max(field(params, "sq_off", "array") + 4L * sqEntries,
                        field(params, "cq_off", "cqes") + CQE_SIZE * cqEntries);
                int shared = Libc.PROT_READ | Libc.PROT_WRITE;
                rings = Libc.mmap(ringsSize, shared, Libc.MAP_SHARED | Libc.MAP_POPULATE, ring.fd(), IoAbi.IORING_OFF_SQ_RING,
                        "io_uring rings").reinterpret(ringsSize);
                sqes = Libc.mmap(SQE_SIZE * sqEntries, shared, Libc.MAP_SHARED | Libc.MAP_POPULATE, ring.fd(), IoAbi.IORING_OFF_SQES,
                        "io_uring submission entries").reinterpret(SQE_SIZE * sqEntries);
                return new IoUring(ring, what, sqEntries, rings, sqes, params, maxVectors);
            } catch (NativeIoException | RuntimeException e) {
                if (rings != null) Libc.munmap(rings.address(), rings.byteSize());
                if (sqes != null) Libc.munmap(sqes.address(), sqes.byteSize());
                ring.close();
                if (e instanceof NativeCallException call) { // mmap's: the caller goes on without a ring, as for the others
                    throw new NativeIoException(call.call(), call.errno());
                }
                throw e;
            }
        }
    }

    /**
     * Registers {@code fd} as the ring's file 0, allows only READV and WRITEV on registered files and
     * no registration but the file's removal ({@link #close}), and enables the ring.
     */
    private static void restrictToVectoredIo(int ring, int fd, String what, Arena setup) throws NativeIoException {
        MemorySegment files = setup.allocate(JAVA_INT);
        files.set(JAVA_INT, 0, fd);
        register(ring, IoAbi.IORING_REGISTER_FILES, files, 1, "register the file " + what);
        long size = IoAbi.IO_URING_RESTRICTION.byteSize();
        MemorySegment restrictions = setup.allocate(IoAbi.IO_URING_RESTRICTION, 4);
        restrictions.set(JAVA_SHORT, 0, (short) IoAbi.IORING_RESTRICTION_SQE_OP);
        restrictions.set(JAVA_BYTE, 2, (byte) IoAbi.IORING_OP_READV);
        restrictions.set(JAVA_SHORT, size, (short) IoAbi.IORING_RESTRICTION_SQE_OP);
        restrictions.set(JAVA_BYTE, size + 2, (byte) IoAbi.IORING_OP_WRITEV);
        restrictions.set(JAVA_SHORT, 2 * size, (short) IoAbi.IORING_RESTRICTION_SQE_FLAGS_REQUIRED);
        restrictions.set(JAVA_BYTE, 2 * size + 2, (byte) IoAbi.IOSQE_FIXED_FILE);
        restrictions.set(JAVA_SHORT, 3 * size, (short) IoAbi.IORING_RESTRICTION_REGISTER_OP);
        restrictions.set(JAVA_BYTE, 3 * size + 2, (byte) IoAbi.IORING_UNREGISTER_FILES);
        register(ring, IoAbi.IORING_REGISTER_RESTRICTIONS, restrictions, 4, "restrict it to reads and writes");
        register(ring, IoAbi.IORING_REGISTER_ENABLE_RINGS, MemorySegment.NULL, 0, "enable it");
    }

    private static void register(int ring, int opcode, MemorySegment argument, int count, String purpose) throws NativeIoException {
        long result = Libc.syscall(REGISTER, ring, opcode, argument.address(), count, 0, 0);
        if (result < 0) {
            throw new NativeIoException("io_uring_register (" + purpose + ")", (int) -result);
        }
    }

    /** The error a {@link Completion}'s negative {@code result} stands for, as a failed {@code call} would have thrown it. */
    public static NativeIoException failure(String call, int result) {
        return new NativeIoException(call, -result);
    }

    /**
     * Queues a read into ({@code write} false) or a write from {@code buffers[0, count)}, native
     * segments, at byte {@code offset} of the file; nothing happens before {@link #submitAndWait}.
     *
     * @return false, queueing nothing, when the batch has no room left for it
     */
    public boolean add(boolean write, long offset, MemorySegment[] buffers, int count, long tag) {
        if (queued == entries || count > maxVectors - vectorsUsed || count > Libc.IOV_MAX) {
            return false;
        }
        long vectors = iovecs.address() + IOVEC_SIZE * vectorsUsed;
        for (int i = 0; i < count; i++) {
            MemorySegment b = buffers[i];
            if (!b.isNative()) {
                throw new IllegalArgumentException("io_uring needs native memory, and buffer " + i + " is on the Java heap");
            }
            long at = IOVEC_SIZE * (vectorsUsed + i);
            iovecs.set(JAVA_LONG, at, b.address());
            iovecs.set(JAVA_LONG, at + 8, b.byteSize());
        }
        queue(write ? IoAbi.IORING_OP_WRITEV : IoAbi.IORING_OP_READV, IoAbi.IOSQE_FIXED_FILE, 0, offset, vectors, count, tag);
        vectorsUsed += count;
        return true;
    }

    /** Writes one submission entry; package-private so that tests can try what the restriction refuses. */
    void queue(int opcode, int flags, int fd, long offset, long address, int length, long tag) {
        int tail = (int) INT.getAcquire(rings, sqTail); // only this thread moves the tail
        int index = (int) (tail & sqMask);
        long sqe = SQE_SIZE * index;
        // All 64 bytes, as eight words (x86-64 is little-endian): opcode, flags, ioprio 0 and fd; off;
        // addr; len and rw_flags 0; user_data; the rest zero.
        sqes.set(JAVA_LONG, sqe, (opcode & 0xff) | (flags & 0xff) << 8 | (long) fd << 32);
        sqes.set(JAVA_LONG, sqe + 8, offset);
        sqes.set(JAVA_LONG, sqe + 16, address);
        sqes.set(JAVA_LONG, sqe + 24, Integer.toUnsignedLong(length));
        sqes.set(JAVA_LONG, sqe + 32, tag);
        sqes.set(JAVA_LONG, sqe + 40, 0);
        sqes.set(JAVA_LONG, sqe + 48, 0);
        sqes.set(JAVA_LONG, sqe + 56, 0);
        rings.set(JAVA_INT, sqArray + 4L * index, index);
        INT.setRelease(rings, sqTail, tail + 1);
        queued++;
    }

    /** Submits the queued reads and writes and waits until the kernel completed every one; {@code completion} hears of each. */
    public void submitAndWait(Completion completion) throws NativeIoException {
        int outstanding = queued;
        int unsubmitted = queued;
        queued = 0;
        vectorsUsed = 0;
        while (outstanding > 0) {
            // Asking to submit more than is queued is harmless, so a call interrupted after its submission can be repeated.
            long result = Libc.syscall(ENTER, ring.fd(), unsubmitted, outstanding, IoAbi.IORING_ENTER_GETEVENTS, 0, 0);
            if (result < 0) {
                int errno = (int) -result;
                if (errno == Libc.EINTR || errno == Libc.EAGAIN || errno == Libc.EBUSY) {
                    continue;
                }
                // What was submitted may still be in flight, with buffers the caller is about to reuse: the ring is unusable.
                throw new NativeIoException("io_uring_enter(" + what + ")", errno);
            }
            unsubmitted = Math.max(0, unsubmitted - (int) result);
            outstanding -= reap(completion);
        }
    }

    private int reap(Completion completion) {
        int head = rings.get(JAVA_INT, cqHead);
        int tail = (int) INT.getAcquire(rings, cqTail);
        int n = 0;
        for (; head != tail; head++, n++) {
            long cqe = cqes + CQE_SIZE * (head & cqMask);
            completion.done(rings.get(JAVA_LONG, cqe), rings.get(JAVA_INT, cqe + 8));
        }
        INT.setRelease(rings, cqHead, head);
        return n;
    }

    /**
     * Closes the ring, having first taken the file back from it: the kernel tears a closed ring down
     * later, on a work queue, and until then the ring would hold the file open, and with it the OFD
     * lock a VM holds on its disk image.
     */
    @Override
    public void close() {
        Libc.syscall(REGISTER, ring.fd(), IoAbi.IORING_UNREGISTER_FILES, 0, 0, 0, 0); // nothing to do on failure but close
        Libc.munmap(sqes.address(), sqes.byteSize());
        Libc.munmap(rings.address(), rings.byteSize());
        ring.close();
        arena.close();
    }
}
