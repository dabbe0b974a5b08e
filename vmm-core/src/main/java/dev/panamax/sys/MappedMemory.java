package dev.panamax.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A shared, anonymous host mapping (optionally backed by a memfd, so that another process or a
 * snapshot can map the same pages). The segment is bound to a shared arena: after {@link #close()}
 * every slice of it refuses access instead of touching unmapped memory.
 */
public final class MappedMemory implements AutoCloseable {
    private final Arena arena = Arena.ofShared();
    private final MemorySegment segment;
    private final long address;
    private final long size;
    private final Fd memfd;

    private MappedMemory(long size, Fd memfd) {
        if (size <= 0 || size % 4096 != 0) {
            throw new IllegalArgumentException("mapping size must be a positive multiple of 4096, got " + size);
        }
        int flags = Libc.MAP_SHARED | Libc.MAP_NORESERVE | (memfd == null ? Libc.MAP_ANONYMOUS : 0);
        MemorySegment raw = Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE, flags,
                memfd == null ? -1 : memfd.fd(), 0, memfd == null ? "anonymous" : "memfd");
        this.address = raw.address();
        this.size = size;
        this.memfd = memfd;
        this.segment = raw.reinterpret(size, arena, null);
    }

    /** Anonymous shared memory; pages are allocated on first touch. */
    public static MappedMemory anonymous(long size) {
        return new MappedMemory(size, null);
    }

    /** Memory backed by a new memfd named {@code name}, for sharing with snapshots or other processes. */
    public static MappedMemory memfd(String name, long size) {
        Fd fd = new Fd(Libc.memfdCreate(name, Libc.MFD_CLOEXEC), "memfd " + name);
        try {
            Libc.ftruncate(fd.fd(), size);
            return new MappedMemory(size, fd);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    public MemorySegment segment() {
        return segment;
    }

    /** The host virtual address, for KVM_SET_USER_MEMORY_REGION. */
    public long address() {
        return address;
    }

    public long size() {
        return size;
    }

    /** The memfd behind this mapping, or null for anonymous memory. */
    public Fd memfd() {
        return memfd;
    }

    @Override
    public synchronized void close() {
        if (!arena.scope().isAlive()) {
            return;
        }
        arena.close(); // waits for in-flight accesses, then invalidates every slice
        Libc.munmap(address, size);
        if (memfd != null) {
            memfd.close();
        }
    }
}
