package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * A file or directory opened for I/O by a file server ({@link PathHandle#reopen}, {@link
 * PathHandle#create}): positional reads and writes into native memory, size, space, sync and
 * directory listing. Failures are {@link NativeIoException}s carrying the errno.
 */
public final class OpenFile extends Fd {
    private static final long D_OFF = FsAbi.offset(FsAbi.DIRENT64, "d_off");
    private static final long D_RECLEN = FsAbi.offset(FsAbi.DIRENT64, "d_reclen");
    private static final long D_TYPE = FsAbi.offset(FsAbi.DIRENT64, "d_type");
    private static final long D_NAME = FsAbi.offset(FsAbi.DIRENT64, "d_name");

    OpenFile(int fd, String what) {
        super(fd, what);
    }

    private static long check(long result, String call, Object target) throws NativeIoException {
        return PathHandle.check(result, call, target);
    }

    private static void requireNative(MemorySegment buffer) {
        if (!buffer.isNative()) {
            throw new IllegalArgumentException("file I/O needs native memory, and this buffer is on the Java heap");
        }
    }

    /** {@code pread(2)} into {@code buffer}; returns the bytes read, fewer than asked only at the end of the file. */
    public long read(long offset, MemorySegment buffer) throws NativeIoException {
        requireNative(buffer);
        long total = 0;
        while (total < buffer.byteSize()) {
            long n = FsCalls.pread(fd(), buffer.asSlice(total), offset + total);
            if (n == -Libc.EINTR) {
                continue;
            }
            if (check(n, "pread", this) == 0) {
                break;
            }
            total += n;
        }
        return total;
    }

    /**
     * {@code preadv(2)} into {@code buffers[0..count)} in turn, native segments (a guest's own
     * buffers, so the data is copied once, by the kernel); returns the bytes read, fewer than the
     * buffers hold only at the end of the file.
     */
    public long read(long offset, MemorySegment[] buffers, int count) throws NativeIoException {
        return Libc.positionalTransfer(false, fd(), this, offset, buffers, count);
    }

    /** {@code preadv(2)} into the buffers of {@code vector}, as {@link #read(long, MemorySegment[], int)}; empties the vector. */
    public long read(long offset, IoVector vector) throws NativeIoException {
        return vector.transfer(false, fd(), this, offset);
    }

    /** {@code pwrite(2)} of all of {@code buffer}; returns its size. */
    public long write(long offset, MemorySegment buffer) throws NativeIoException {
        requireNative(buffer);
        long total = 0;
        while (total < buffer.byteSize()) {
            long n = FsCalls.pwrite(fd(), buffer.asSlice(total), offset + total);
            if (n == -Libc.EINTR) {
                continue;
            }
            if (check(n, "pwrite", this) == 0) {
                throw new NativeIoException("pwrite(" + this + ") wrote nothing", FsAbi.EIO);
            }
            total += n;
        }
        return total;
    }

    public void truncate(long length) throws NativeIoException {
        check(FsCalls.ftruncate(fd(), length), "ftruncate", this + ", " + length);
    }

    /** {@code fallocate(2)} with {@code mode} ({@code FsAbi.FALLOC_FL_*}). */
    public void allocate(int mode, long offset, long length) throws NativeIoException {
        check(FsCalls.fallocate(fd(), mode, offset, length), "fallocate", this);
    }

    /** {@code lseek(2)}, for SEEK_DATA and SEEK_HOLE as much as for directory offsets. */
    public long seek(long offset, int whence) throws NativeIoException {
        return check(FsCalls.lseek(fd(), offset, whence), "lseek", this);
    }

    /** {@code fsync(2)}, or {@code fdatasync(2)} with {@code dataOnly}. */
    public void sync(boolean dataOnly) throws NativeIoException {
        check(FsCalls.fsync(fd(), dataOnly), dataOnly ? "fdatasync" : "fsync", this);
    }

    public FileStat stat() throws NativeIoException {
        return FsCalls.stat(fd(), new byte[0], FsAbi.AT_EMPTY_PATH, "fstat", this);
    }

    public void chmod(int mode) throws NativeIoException {
        check(FsCalls.fchmod(fd(), mode & 07777), "fchmod", this);
    }

    /**
     * The entries of this directory from {@code offset} (0, or an entry's {@link DirEntry#nextOffset}),
     * as many as one {@code getdents64(2)} into {@code bufferBytes} returns; empty at the end.
     */
    public List<DirEntry> readDirectory(long offset, int bufferBytes) throws NativeIoException {
        seek(offset, FsAbi.SEEK_SET);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(bufferBytes, 8);
            long length = check(FsCalls.getdents64(fd(), buffer), "getdents64", this);
            List<DirEntry> entries = new ArrayList<>();
            long at = 0;
            while (at < length) {
                int recordLength = Short.toUnsignedInt(buffer.get(JAVA_SHORT, at + D_RECLEN));
                if (recordLength <= D_NAME || at + recordLength > length) {
                    throw new NativeIoException("getdents64(" + this + ") returned a bad record", FsAbi.EIO);
                }
                long nameEnd = at + D_NAME;
                while (nameEnd < at + recordLength && buffer.get(JAVA_BYTE, nameEnd) != 0) {
                    nameEnd++;
                }
                byte[] name = buffer.asSlice(at + D_NAME, nameEnd - at - D_NAME).toArray(JAVA_BYTE);
                entries.add(new DirEntry(buffer.get(JAVA_LONG, at), buffer.get(JAVA_LONG, at + D_OFF),
                        Byte.toUnsignedInt(buffer.get(JAVA_BYTE, at + D_TYPE)), name));
                at += recordLength;
            }
            return entries;
        }
    }
}
