package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * What the JDK cannot do with a sparse file: punch a hole ({@code fallocate(FALLOC_FL_PUNCH_HOLE)})
 * and find data and holes ({@code lseek(SEEK_DATA/SEEK_HOLE)}), on a descriptor of its own beside
 * the caller's FileChannel. Where the file system lacks these, the answers degrade to "no holes":
 * callers then write zeros and treat the file as all data, slower but still correct. Also the lock
 * the JDK's {@code FileLock} cannot give: one owned by this descriptor, not by the process. And
 * the scattered positional I/O it lacks ({@code preadv}/{@code pwritev}), for request queues.
 */
public final class SparseFile implements AutoCloseable {
    private final Fd fd;
    private final Path path;

    private SparseFile(Fd fd, Path path) {
        this.fd = fd;
        this.path = path;
    }

    /** Opens {@code path} for hole operations (read-write to punch holes). */
    public static SparseFile open(Path path, boolean writable) throws NativeIoException {
        try {
            int fd = Libc.open(path.toString(), (writable ? Libc.O_RDWR : Libc.O_RDONLY) | Libc.O_CLOEXEC);
            return new SparseFile(new Fd(fd, path.toString()), path);
        } catch (NativeCallException e) {
            throw new NativeIoException(e.call(), e.errno());
        }
    }

    /**
     * Deallocates {@code [offset, offset + length)}, keeping the file size; returns false when the
     * file system cannot, in which case the caller must write zeros itself.
     */
    public boolean punchHole(long offset, long length) throws NativeIoException {
        if (length <= 0) {
            return false;
        }
        int mode = Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE;
        long result = Libc.tryCall((arena, state) -> Libc.fallocateRaw(state, fd.fd(), mode, offset, length));
        if (result == 0) {
            return true;
        }
        if (result == -Libc.EOPNOTSUPP || result == -Libc.EINVAL) {
            return false;
        }
        throw new NativeIoException("fallocate(PUNCH_HOLE, " + path + ")", (int) -result);
    }

    /** The first data byte at or after {@code offset}, or {@code fileSize} when only a hole follows. */
    public long nextData(long offset, long fileSize) {
        return seek(offset, Libc.SEEK_DATA, fileSize);
    }

    /** The first hole byte at or after {@code offset} (the end of the file counts as a hole). */
    public long nextHole(long offset, long fileSize) {
        return seek(offset, Libc.SEEK_HOLE, fileSize);
    }

    private long seek(long offset, int whence, long fileSize) {
        if (offset >= fileSize) {
            return fileSize;
        }
        long result = Libc.tryCall((arena, state) -> Libc.lseekRaw(state, fd.fd(), offset, whence));
        if (result >= 0) {
            return Math.min(result, fileSize);
        }
        if (result == -Libc.ENXIO) {
            return fileSize; // no data (or hole) after offset
        }
        return whence == Libc.SEEK_DATA ? offset : fileSize; // no SEEK_DATA support: all data
    }

    /**
     * Locks the whole file, shared or exclusive, with an open file description lock ({@code
     * fcntl(F_OFD_SETLK)}), held until this is closed. Unlike a {@code FileChannel} lock it conflicts
     * with other opens in this process too, and closing another descriptor of the file does not drop
     * it. Returns false when a conflicting lock is held.
     */
    public boolean tryLock(boolean exclusive) throws NativeIoException {
        return setLock((short) (exclusive ? Libc.F_WRLCK : Libc.F_RDLCK));
    }

    /** Drops the lock {@link #tryLock} took, for a live migration's hand-over; a later {@link #tryLock} takes it again. */
    public void unlock() throws NativeIoException {
        setLock((short) Libc.F_UNLCK);
    }

    private boolean setLock(short type) throws NativeIoException {
        long result = Libc.tryCall((arena, state) -> {
            MemorySegment flock = arena.allocate(Libc.FLOCK); // zeroed: whole file from SEEK_SET 0, l_pid 0
            flock.set(JAVA_SHORT, Libc.FLOCK.byteOffset(PathElement.groupElement("l_type")), type);
            return Libc.fcntlRaw(state, fd.fd(), Libc.F_OFD_SETLK, flock);
        });
        if (result == 0) {
            return true;
        }
        if (result == -Libc.EAGAIN || result == -Libc.EACCES) {
            return false;
        }
        throw new NativeIoException("fcntl(F_OFD_SETLK, " + path + ")", (int) -result);
    }

    /**
     * Reads into {@code buffers[0..count)} in turn from {@code offset}, as one {@code preadv(2)} where
     * it can: one system call for a whole scattered request. Returns the bytes read, fewer than the
     * buffers hold only at the end of the file. The buffers must be native segments.
     */
    public long read(long offset, MemorySegment[] buffers, int count) throws NativeIoException {
        return Libc.positionalTransfer(false, fd.fd(), path, offset, buffers, count);
    }

    /** Writes {@code buffers[0..count)} in turn at {@code offset}, with {@code pwritev(2)}: the gathering twin of {@link #read}. */
    public void write(long offset, MemorySegment[] buffers, int count) throws NativeIoException {
        Libc.positionalTransfer(true, fd.fd(), path, offset, buffers, count);
    }

    /**
     * An {@link IoUring} that reads and writes this file only, {@code entries} requests and {@code
     * maxVectors} buffers a batch; the caller closes it before this file.
     *
     * @throws NativeIoException when this kernel or process cannot have one
     */
    public IoUring ioUring(int entries, int maxVectors) throws NativeIoException {
        return IoUring.forFile(fd.fd(), path.toString(), entries, maxVectors);
    }

    int fd() {
        return fd.fd();
    }

    @Override
    public void close() {
        fd.close();
    }
}
