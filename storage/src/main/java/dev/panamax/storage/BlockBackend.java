package dev.panamax.storage;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

/**
 * A virtual disk as seen by a device model: a byte-addressed range of {@link #size()} bytes, whatever
 * the image format behind it. Offsets and lengths need no alignment. Implementations are safe for
 * concurrent use by several request queues.
 */
public interface BlockBackend extends AutoCloseable {

    /** Virtual size in bytes. */
    long size();

    boolean isReadOnly();

    /** Fills {@code dst} (all its remaining bytes) from the disk at {@code offset}. */
    void read(long offset, ByteBuffer dst) throws IOException;

    /** Writes all remaining bytes of {@code src} at {@code offset}. */
    void write(long offset, ByteBuffer src) throws IOException;

    /**
     * Fills {@code buffers[0..count)} in turn from the disk at {@code offset}: a scattered read, as a
     * device request brings it. Formats that can do it in one system call override this.
     */
    default void read(long offset, MemorySegment[] buffers, int count) throws IOException {
        for (int i = 0; i < count; i++) {
            read(offset, buffers[i].asByteBuffer());
            offset += buffers[i].byteSize();
        }
    }

    /** Writes {@code buffers[0..count)} in turn at {@code offset}: the gathering twin of {@link #read(long, MemorySegment[], int)}. */
    default void write(long offset, MemorySegment[] buffers, int count) throws IOException {
        for (int i = 0; i < count; i++) {
            write(offset, buffers[i].asByteBuffer());
            offset += buffers[i].byteSize();
        }
    }

    /**
     * Batches of reads and writes ({@code requests} of at most {@code buffers} buffers in all) for one
     * request queue's thread, or null when this backend has none: every format but raw, whose
     * requests go through its own metadata, and a host without io_uring.
     */
    default BatchedIo batchedIo(int requests, int buffers) {
        return null;
    }

    /** Makes the range read as zeros, cheaply where the format allows. */
    void writeZeroes(long offset, long length) throws IOException;

    /**
     * Tells the backend the guest no longer needs the range; the space may be given back to the host.
     * Afterwards the range reads as zeros or, for an image with a backing file, as the backing file.
     */
    void discard(long offset, long length) throws IOException;

    /** Makes every completed write durable (metadata included). */
    void flush() throws IOException;

    /**
     * Describes the run of bytes starting at {@code offset} (at most {@code maxLength} long) that all
     * have the same allocation state in this image (not looking into a backing file).
     */
    Extent extent(long offset, long maxLength) throws IOException;

    /** The image that unallocated ranges read from, or null. Owned by this backend. */
    default BlockBackend backing() {
        return null;
    }

    ImageFormat format();

    /** The host file of this image (the top one of a chain): where a VM's lock on the disk is. */
    ImageFile imageFile();

    @Override
    void close() throws IOException;

    /** Checks a request against the disk size; the one place bounds are enforced for all formats. */
    static void checkRange(BlockBackend disk, long offset, long length) {
        if (offset < 0 || length < 0 || offset > disk.size() - length) {
            throw new IllegalArgumentException("request at offset " + offset + " of " + length
                    + " bytes is outside the disk (size " + disk.size() + " bytes)");
        }
    }

    static void checkWritable(BlockBackend disk) throws IOException {
        if (disk.isReadOnly()) {
            throw new ReadOnlyImageException("image is open read-only");
        }
    }
}
