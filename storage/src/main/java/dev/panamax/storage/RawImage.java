package dev.panamax.storage;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/** A raw image: the file is the disk. Holes in the file are unallocated ranges; discard punches new ones. */
public final class RawImage implements BlockBackend {
    private final ImageFile file;
    private final long size;

    private RawImage(ImageFile file, long size) {
        this.file = file;
        this.size = size;
    }

    public static RawImage open(Path path, boolean writable) throws IOException {
        return open(ImageFile.open(path, writable));
    }

    /** Takes ownership of {@code file}. */
    public static RawImage open(ImageFile file) throws IOException {
        return new RawImage(file, file.size());
    }

    /** Creates a sparse raw image of {@code size} bytes (no blocks allocated). */
    public static RawImage create(Path path, long size) throws IOException {
        if (size < 0) throw new ImageRequestException("image size must not be negative: " + size);
        ImageFile file = ImageFile.create(path);
        file.setSize(size);
        return new RawImage(file, size);
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
        file.write(offset, buffers, count);
    }

    private static long totalLength(MemorySegment[] buffers, int count) {
        long total = 0;
        for (int i = 0; i < count; i++) {
            total += buffers[i].byteSize();
        }
        return total;
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
