package dev.panamax.storage;

import dev.panamax.sys.IoUring;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BiFunction;

/** A raw image: the file is the disk. Holes in the file are unallocated ranges; discard punches new ones. */
public final class RawImage implements BlockBackend {
    private static final System.Logger LOG = System.getLogger(RawImage.class.getName());
    private static final AtomicBoolean RING_REFUSAL_LOGGED = new AtomicBoolean();
    private final ImageFile file;
    private final long size;
    private final SignatureGuard guard; // null when the format was given

    /**
     * What keeps a raw disk whose format was detected from being written into another format: a
     * guest that wrote a qcow2 header at its start would have the next probe open its host file as
     * that qcow2 image, with a backing file of the guest's choosing (QEMU restricts block 0 so).
     *
     * @param headBytes how many of the disk's first bytes the probe reads
     * @param tailBytes how many of its last bytes
     * @param formatIn  the format the probe takes a file with this head and tail for, or null for raw
     */
    public record SignatureGuard(int headBytes, int tailBytes, BiFunction<ByteBuffer, ByteBuffer, String> formatIn) {}

    private RawImage(ImageFile file, long size, SignatureGuard guard) {
        this.file = file;
        this.size = size;
        this.guard = guard;
    }

    public static RawImage open(Path path, boolean writable) throws IOException {
        return open(ImageFile.open(path, writable));
    }

    /** Takes ownership of {@code file}. */
    public static RawImage open(ImageFile file) throws IOException {
        return new RawImage(file, file.size(), null);
    }

    /** {@link #open(ImageFile)} for a file whose format was detected: writes that would change what it is detected as are refused. */
    public static RawImage openDetected(ImageFile file, SignatureGuard guard) throws IOException {
        return new RawImage(file, file.size(), guard);
    }

    /** Creates a sparse raw image of {@code size} bytes (no blocks allocated). */
    public static RawImage create(Path path, long size) throws IOException {
        if (size < 0) throw new ImageRequestException("image size must not be negative: " + size);
        ImageFile file = ImageFile.create(path);
        file.setSize(size);
        return new RawImage(file, size, null);
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public boolean isReadOnly() {
        return !file.isWritable();
    }

    @Override
    public ImageFile imageFile() {
        return file;
    }

    @Override
    public ImageFormat format() {
        return ImageFormat.RAW;
    }

    public ImageFile file() {
        return file;
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        BlockBackend.checkRange(this, offset, dst.remaining());
        file.readZeroPadded(offset, dst);
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        BlockBackend.checkWritable(this);
        BlockBackend.checkRange(this, offset, src.remaining());
        refuseNewSignature(offset, new MemorySegment[] {MemorySegment.ofBuffer(src)}, 1);
        file.write(offset, src);
    }

    /**
     * One preadv for the whole request; bytes past the end of the file read as zeros. A single
     * buffer takes the FileChannel's pread, which costs less than setting up an iovec.
     */
    @Override
    public void read(long offset, MemorySegment[] buffers, int count) throws IOException {
        if (count == 1) {
            read(offset, buffers[0].asByteBuffer());
            return;
        }
        BlockBackend.checkRange(this, offset, totalLength(buffers, count));
        file.read(offset, buffers, count);
    }

    /** One pwritev for the whole request (a single buffer: the FileChannel's pwrite). */
    @Override
    public void write(long offset, MemorySegment[] buffers, int count) throws IOException {
        if (count == 1) {
            write(offset, buffers[0].asByteBuffer());
            return;
        }
        BlockBackend.checkWritable(this);
        BlockBackend.checkRange(this, offset, totalLength(buffers, count));
        refuseNewSignature(offset, buffers, count);
        file.write(offset, buffers, count);
    }

    /**
     * Refuses a write that reaches the bytes the probe reads when, with it, they would be taken for
     * another format. (Zeroing cannot make a signature, all being non-zero: discard needs no check.)
     */
    private void refuseNewSignature(long offset, MemorySegment[] buffers, int count) throws IOException {
        if (guard == null) return;
        long end = offset + totalLength(buffers, count);
        long tailStart = Math.max(0, size - guard.tailBytes());
        if (offset >= guard.headBytes() && end <= tailStart) return;
        String format = guard.formatIn().apply(asWritten(0, guard.headBytes(), offset, buffers, count),
                asWritten(tailStart, (int) (size - tailStart), offset, buffers, count));
        if (format != null) {
            throw new RefusedWriteException("refused a write at byte " + offset + " of " + file.path() + ": it would make this raw disk"
                    + " look like " + format + " to the next format probe. Its format was detected, not given; give it as raw"
                    + " (--disk PATH,format=raw) to let the guest write such data");
        }
    }

    /** The file's {@code length} bytes from {@code start} (zeros past its end) as they would be after writing {@code buffers} at {@code offset}. */
    private ByteBuffer asWritten(long start, int length, long offset, MemorySegment[] buffers, int count) throws IOException {
        ByteBuffer window = ByteBuffer.allocate(length);
        file.readZeroPadded(start, window);
        window.clear();
        MemorySegment view = MemorySegment.ofBuffer(window);
        long at = offset;
        for (int i = 0; i < count; i++) {
            long from = Math.max(at, start);
            long to = Math.min(at + buffers[i].byteSize(), start + length);
            if (from < to) MemorySegment.copy(buffers[i], from - at, view, from - start, to - from);
            at += buffers[i].byteSize();
        }
        return window;
    }

    private static long totalLength(MemorySegment[] buffers, int count) {
        long total = 0;
        for (int i = 0; i < count; i++) {
            total += buffers[i].byteSize();
        }
        return total;
    }

    /**
     * Batches through an io_uring of the image's file; null when the host has none (logged once,
     * at the level of a fact, not a fault: requests then go one system call each).
     */
    @Override
    public BatchedIo batchedIo(int requests, int buffers) {
        try {
            return new RingBatch(file.ioUring(Integer.highestOneBit(Math.max(1, requests - 1)) << 1, buffers), requests);
        } catch (IOException e) {
            if (!RING_REFUSAL_LOGGED.getAndSet(true)) {
                LOG.log(System.Logger.Level.INFO, "no io_uring for disk " + file.path() + " (" + e.getMessage()
                        + "): its requests go to the host one system call each");
            }
            return null;
        }
    }

    /** A batch on an io_uring; a request the kernel moved only part of is finished with a preadv or pwritev. */
    private final class RingBatch implements BatchedIo {
        private final IoUring ring;
        private final long[] offsets;
        private final MemorySegment[][] buffers;
        private final int[] counts;
        private final boolean[] writes;
        private final long[] lengths;
        private final int[] results;
        private final int[] queuedTags;
        private final IoUring.Completion record;
        private int queued;

        RingBatch(IoUring ring, int requests) {
            this.ring = ring;
            offsets = new long[requests];
            buffers = new MemorySegment[requests][];
            counts = new int[requests];
            writes = new boolean[requests];
            lengths = new long[requests];
            results = new int[requests];
            queuedTags = new int[requests];
            record = (tag, result) -> results[(int) tag] = result;
        }

        @Override
        public boolean read(long offset, MemorySegment[] into, int count, int tag) {
            long length = totalLength(into, count);
            BlockBackend.checkRange(RawImage.this, offset, length);
            return queue(false, offset, into, count, length, tag);
        }

        @Override
        public boolean write(long offset, MemorySegment[] from, int count, int tag) throws IOException {
            long length = totalLength(from, count);
            BlockBackend.checkWritable(RawImage.this);
            BlockBackend.checkRange(RawImage.this, offset, length);
            refuseNewSignature(offset, from, count);
            return queue(true, offset, from, count, length, tag);
        }

        private boolean queue(boolean write, long offset, MemorySegment[] parts, int count, long length, int tag) {
            Objects.checkIndex(tag, offsets.length); // before the ring has it
            if (queued == queuedTags.length || !ring.add(write, offset, parts, count, tag)) {
                return false;
            }
            offsets[tag] = offset;
            buffers[tag] = parts;
            counts[tag] = count;
            writes[tag] = write;
            lengths[tag] = length;
            queuedTags[queued++] = tag;
            return true;
        }

        @Override
        public void complete(IOException[] failures) throws IOException {
            int n = queued;
            queued = 0;
            ring.submitAndWait(record);
            for (int i = 0; i < n; i++) {
                int tag = queuedTags[i];
                failures[tag] = null;
                int result = results[tag];
                if (result < 0) {
                    failures[tag] = IoUring.failure((writes[tag] ? "pwritev(" : "preadv(") + file.path() + ")", result);
                } else if (result < lengths[tag]) {
                    try {
                        finish(tag, result);
                    } catch (IOException e) {
                        failures[tag] = e;
                    }
                }
                buffers[tag] = null;
            }
        }

        /** What the kernel left of request {@code tag} after {@code done} bytes: the end of the file, or a split transfer. */
        private void finish(int tag, long done) throws IOException {
            MemorySegment[] parts = buffers[tag];
            int first = 0;
            while (done >= parts[first].byteSize()) {
                done -= parts[first].byteSize();
                first++;
            }
            MemorySegment[] rest = new MemorySegment[counts[tag] - first];
            for (int i = 0; i < rest.length; i++) {
                rest[i] = i == 0 ? parts[first].asSlice(done) : parts[first + i];
            }
            long at = offsets[tag] + lengths[tag] - totalLength(rest, rest.length);
            if (writes[tag]) {
                file.write(at, rest, rest.length);
            } else {
                file.read(at, rest, rest.length); // past the end of the file: zeros
            }
        }

        @Override
        public void close() {
            ring.close();
        }
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        discard(offset, length); // raw has no backing file, so a hole is exactly "reads as zeros"
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        BlockBackend.checkWritable(this);
        BlockBackend.checkRange(this, offset, length);
        file.zero(offset, length);
    }

    @Override
    public void flush() throws IOException {
        if (file.isWritable()) file.sync();
    }

    @Override
    public Extent extent(long offset, long maxLength) throws IOException {
        BlockBackend.checkRange(this, offset, maxLength);
        long end = offset + maxLength;
        if (offset >= file.size()) return new Extent(offset, maxLength, Extent.Kind.ZERO);
        long data = file.nextData(offset);
        if (data > offset) return new Extent(offset, Math.min(data, end) - offset, Extent.Kind.ZERO);
        long hole = file.nextHole(offset);
        return new Extent(offset, Math.min(hole, end) - offset, Extent.Kind.DATA);
    }

    @Override
    public void close() throws IOException {
        file.close();
    }
}
