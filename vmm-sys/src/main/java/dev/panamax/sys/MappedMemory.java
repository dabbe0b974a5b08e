package dev.panamax.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Host memory for a guest: private anonymous pages, or a shared mapping of a memfd (so that another
 * process or a snapshot can map the same pages). The segment is bound to a shared arena: after
 * {@link #close()} every slice of it refuses access instead of touching unmapped memory.
 *
 * <p>Anonymous memory is aligned to 2 MiB and advised for transparent huge pages, as QEMU does: a
 * guest's page walks then end in 2 MiB host pages, which matters most under nested virtualization.
 * (Shared anonymous memory would be shmem, which hosts rarely give huge pages.)
 */
public final class MappedMemory implements AutoCloseable {
    private final Arena arena = Arena.ofShared();
    private final MemorySegment segment;
    private final long address;
    private final long size;
    private final Fd memfd;

    private static final long HUGE_PAGE = 2L << 20;

    private MappedMemory(long size, Fd memfd) {
        if (size <= 0 || size % 4096 != 0) {
            throw new IllegalArgumentException("mapping size must be a positive multiple of 4096, got " + size);
        }
        this.address = memfd == null ? mapAnonymous(size)
                : Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_NORESERVE, memfd.fd(), 0, "memfd").address();
        this.size = size;
        this.memfd = memfd;
        this.segment = MemorySegment.ofAddress(address).reinterpret(size, arena, null);
    }

    /** Maps {@code size} bytes starting on a 2 MiB boundary (by over-mapping and trimming), advised for huge pages. */
    private static long mapAnonymous(long size) {
        long mapped = size + HUGE_PAGE;
        long raw = Libc.mmap(mapped, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE,
                -1, 0, "anonymous").address();
        long start = (raw + HUGE_PAGE - 1) & -HUGE_PAGE;
        if (start > raw) {
            Libc.munmap(raw, start - raw);
        }
        long tail = raw + mapped - (start + size);
        if (tail > 0) {
            Libc.munmap(start + size, tail);
        }
        Libc.madvise(start, size, Libc.MADV_HUGEPAGE); // an optimisation: without THP the pages are simply small
        return start;
    }

    /** Anonymous private memory; pages are allocated on first touch. */
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
