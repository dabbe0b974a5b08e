package dev.panamax.storage;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.file.Path;

/**
 * Sparse-file operations the JDK lacks: punching holes ({@code fallocate(FALLOC_FL_PUNCH_HOLE)}) and
 * finding them ({@code lseek(SEEK_DATA/SEEK_HOLE)}). storage may depend on the JDK only, so these three
 * libc calls are bound here with FFM rather than through vmm-core. Without native access (a library
 * user who did not grant it) every call degrades to "no holes known": callers then write zeros and
 * treat the whole file as data, which is slower but still correct.
 */
final class FileHoles implements AutoCloseable {
    private static final int O_RDONLY = 0, O_RDWR = 2, O_CLOEXEC = 0x80000;
    private static final int SEEK_DATA = 3, SEEK_HOLE = 4;
    private static final int FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2;
    private static final int ENXIO = 6;

    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CALL_STATE.varHandle(java.lang.foreign.MemoryLayout.PathElement.groupElement("errno"));

    /** int open(const char *path, int flags); */
    private static final MethodHandle OPEN;
    /** off_t lseek(int fd, off_t offset, int whence); */
    private static final MethodHandle LSEEK;
    /** int fallocate(int fd, int mode, off_t offset, off_t len); */
    private static final MethodHandle FALLOCATE;
    /** int close(int fd); */
    private static final MethodHandle CLOSE;

    static {
        MethodHandle open = null, lseek = null, fallocate = null, close = null;
        try {
            Linker linker = Linker.nativeLinker();
            var libc = linker.defaultLookup();
            var errno = Linker.Option.captureCallState("errno");
            open = linker.downcallHandle(libc.find("open").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT), errno);
            lseek = linker.downcallHandle(libc.find("lseek").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG,
                            ValueLayout.JAVA_INT), errno);
            fallocate = linker.downcallHandle(libc.find("fallocate").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                            ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG), errno);
            close = linker.downcallHandle(libc.find("close").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        } catch (RuntimeException e) { // IllegalCallerException without --enable-native-access
            open = null;
        }
        OPEN = open;
        LSEEK = lseek;
        FALLOCATE = fallocate;
        CLOSE = close;
    }

    private final Path path;
    private final int fd;

    private FileHoles(Path path, int fd) {
        this.path = path;
        this.fd = fd;
    }

    /** Opens a second descriptor on {@code path} for hole operations; never fails (falls back to none). */
    static FileHoles open(Path path, boolean writable) {
        if (OPEN == null) return new FileHoles(path, -1);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            int fd = (int) OPEN.invokeExact(state, arena.allocateFrom(path.toString()),
                    (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
            return new FileHoles(path, fd);
        } catch (Throwable t) {
            return new FileHoles(path, -1);
        }
    }

    /**
     * Deallocates the range, keeping the file size; returns false when the file system or the
     * environment cannot, in which case the caller must write zeros itself.
     */
    boolean punchHole(long offset, long length) throws IOException {
        if (fd < 0 || length <= 0) return false;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            int rc = (int) FALLOCATE.invokeExact(state, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
            return rc == 0;
        } catch (Throwable t) {
            throw new IOException("fallocate(PUNCH_HOLE) on " + path + " failed", t);
        }
    }

    /** Offset of the first data byte at or after {@code offset}, or {@code fileSize} when only a hole follows. */
    long nextData(long offset, long fileSize) throws IOException {
        return seek(offset, SEEK_DATA, fileSize);
    }

    /** Offset of the first hole byte at or after {@code offset} (the end of file counts as a hole). */
    long nextHole(long offset, long fileSize) throws IOException {
        return seek(offset, SEEK_HOLE, fileSize);
    }

    private long seek(long offset, int whence, long fileSize) throws IOException {
        if (offset >= fileSize) return fileSize;
        if (fd < 0) return whence == SEEK_DATA ? offset : fileSize;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            long r = (long) LSEEK.invokeExact(state, fd, offset, whence);
            if (r >= 0) return Math.min(r, fileSize);
            int errno = (int) ERRNO.get(state, 0L);
            if (errno == ENXIO) return fileSize;
            return whence == SEEK_DATA ? offset : fileSize; // file system without SEEK_DATA: all data
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new IOException("lseek on " + path + " failed", t);
        }
    }

    @Override
    public void close() {
        if (fd >= 0) {
            try {
                int ignored = (int) CLOSE.invokeExact(fd);
            } catch (Throwable ignored) {
                // closing a descriptor we only read hole information through cannot lose data
            }
        }
    }
}
