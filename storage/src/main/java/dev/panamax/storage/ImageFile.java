package dev.panamax.storage;

import dev.panamax.sys.IoUring;
import dev.panamax.sys.SparseFile;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** The host file under an image: positional I/O that always transfers whole buffers, plus hole support. */
public final class ImageFile implements AutoCloseable {
    private final Path path;
    private final FileChannel channel;
    private final SparseFile holes;
    private final boolean writable;
    /**
     * False for an output nobody can use until it is complete (convert): its fsyncs are skipped and the
     * caller syncs once at the end, as {@code qemu-img convert} (cache=unsafe) does not even do.
     */
    private volatile boolean durable = true;
    private boolean locked; // by lock(), until unlock()
    private boolean relockable; // unlock() dropped the lock, which relock() takes back

    private ImageFile(Path path, FileChannel channel, boolean writable) throws IOException {
        this.path = path;
        this.channel = channel;
        this.writable = writable;
        try {
            this.holes = SparseFile.open(path, writable);
        } catch (IOException e) {
            channel.close();
            throw e;
        }
    }

    public static ImageFile open(Path path, boolean writable) throws IOException {
        OpenOption[] options = writable
                ? new OpenOption[] {StandardOpenOption.READ, StandardOpenOption.WRITE}
                : new OpenOption[] {StandardOpenOption.READ};
        try {
            return new ImageFile(path, FileChannel.open(path, options), writable);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(path.toString(), null, "image file does not exist");
        } catch (AccessDeniedException e) {
            throw new AccessDeniedException(path.toString(), null,
                    writable ? "no permission to open the image for writing" : "no permission to read the image");
        }
    }

    /** Creates (or truncates) {@code path}; refuses to follow into a directory. */
    public static ImageFile create(Path path) throws IOException {
        FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE,
                StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING);
        return new ImageFile(path, ch, true);
    }

    public Path path() {
        return path;
    }

    public boolean isWritable() {
        return writable;
    }

    public long size() throws IOException {
        return channel.size();
    }

    /** Reads exactly {@code dst.remaining()} bytes; bytes past the end of the file read as zeros. */
    public void readZeroPadded(long offset, ByteBuffer dst) throws IOException {
        while (dst.hasRemaining()) {
            int n = channel.read(dst, offset);
            if (n < 0) {
                while (dst.hasRemaining()) dst.put((byte) 0);
                return;
            }
            offset += n;
        }
    }

    /** Fills {@code buffers[0..count)} from {@code offset} with one preadv; bytes past the end of the file read as zeros. */
    public void read(long offset, MemorySegment[] buffers, int count) throws IOException {
        long done = holes.read(offset, buffers, count);
        long position = 0;
        for (int i = 0; i < count; i++) {
            long size = buffers[i].byteSize();
            if (position + size > done) {
                buffers[i].asSlice(Math.max(0, done - position)).fill((byte) 0);
            }
            position += size;
        }
    }

    /**
     * An io_uring that reads and writes this file only ({@link SparseFile#ioUring}).
     *
     * @throws IOException when this kernel or process cannot have one
     */
    public IoUring ioUring(int entries, int maxVectors) throws IOException {
        return holes.ioUring(entries, maxVectors);
    }

    /** Writes {@code buffers[0..count)} at {@code offset} with one pwritev. */
    public void write(long offset, MemorySegment[] buffers, int count) throws IOException {
        holes.write(offset, buffers, count);
    }

    /** Reads exactly {@code dst.remaining()} bytes or fails naming {@code what} when the file is too short. */
    public void readFully(long offset, ByteBuffer dst, String what) throws IOException {
        long size = channel.size();
        if (offset < 0 || offset > size - dst.remaining()) {
            throw new InvalidImageException(path + ": " + what + " at offset " + offset + " (" + dst.remaining()
                    + " bytes) lies beyond the end of the file (" + size + " bytes); the image is truncated or damaged");
        }
        while (dst.hasRemaining()) {
            int n = channel.read(dst, offset);
            if (n < 0) throw new InvalidImageException(path + ": file shrank while reading " + what);
            offset += n;
        }
    }

    public void write(long offset, ByteBuffer src) throws IOException {
        while (src.hasRemaining()) {
            offset += channel.write(src, offset);
        }
    }

    /** Makes the range read as zeros, as a hole where the file system allows. */
    public void zero(long offset, long length) throws IOException {
        if (length <= 0) return;
        long size = channel.size();
        if (offset >= size) return; // already reads as zero
        long end = Math.min(offset + length, size);
        if (holes.punchHole(offset, end - offset)) return;
        ByteBuffer zeros = ByteBuffer.allocate((int) Math.min(1 << 20, end - offset));
        for (long pos = offset; pos < end; ) {
            zeros.clear().limit((int) Math.min(zeros.capacity(), end - pos));
            write(pos, zeros);
            pos += zeros.limit();
        }
    }

    public long nextData(long offset) throws IOException {
        return holes.nextData(offset, channel.size());
    }

    public long nextHole(long offset) throws IOException {
        return holes.nextHole(offset, channel.size());
    }

    /** Bytes of the file actually backed by storage (data extents), what {@code du} would show. */
    public long allocatedBytes() throws IOException {
        long size = channel.size(), total = 0;
        for (long pos = nextData(0); pos < size; ) {
            long hole = nextHole(pos);
            total += hole - pos;
            pos = nextData(hole);
        }
        return total;
    }

    public void truncate(long size) throws IOException {
        if (channel.size() > size) channel.truncate(size);
    }

    public void setSize(long size) throws IOException {
        if (channel.size() > size) {
            channel.truncate(size);
        } else if (channel.size() < size) {
            try (var raf = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                raf.setLength(size); // ftruncate: extends with a hole
            }
        }
    }

    /**
     * Locks the file for as long as it is open: exclusive when writable, shared when read-only, so
     * that two VMs never write one disk. An open file description lock: it binds other processes
     * (QEMU's locks are of the same kind) and other opens in this one.
     *
     * @throws IOException naming the file when a conflicting lock is held
     */
    public void lock() throws IOException {
        if (!holes.tryLock(writable)) {
            throw new IOException("disk image " + path + " is in use by another process (locked); stop the VM using it,"
                    + " or give this one a copy" + (writable ? " (or attach it read-only to every VM)" : ""));
        }
        locked = true;
    }

    /**
     * Drops the lock {@link #lock} took, so that another process (a live migration's destination)
     * can take it; {@link #relock} takes it back. Does nothing to a file that was not locked.
     */
    public void unlock() throws IOException {
        if (locked) {
            holes.unlock();
            locked = false;
            relockable = true;
        }
    }

    /**
     * Takes back the lock {@link #unlock} dropped.
     *
     * @return false when another process holds a conflicting lock meanwhile
     */
    public boolean relock() throws IOException {
        if (!relockable || locked) {
            return true;
        }
        locked = holes.tryLock(writable);
        relockable = !locked;
        return locked;
    }

    public void sync() throws IOException {
        if (durable) channel.force(true);
    }

    public void setDurable(boolean durable) {
        this.durable = durable;
    }

    /** fsync of a closed file, for outputs written with {@link #setDurable(boolean) durable} off. */
    public static void syncFile(Path path) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
    }

    @Override
    public void close() throws IOException {
        holes.close();
        channel.close();
    }
}
