package dev.panamax.sys;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Host memory for a guest: private anonymous pages, a shared mapping of a memfd (so that another
 * process or a snapshot can map the same pages), or a private mapping of a snapshot's memory file
 * (pages read on demand, writes copied, the file never changed). The segment is bound to a shared arena: after
 * {@link #close()} every slice of it refuses access instead of touching unmapped memory.
 *
 * <p>Anonymous memory is aligned to 2 MiB and advised for transparent huge pages, as QEMU does: a
 * guest's page walks then end in 2 MiB host pages, which matters most under nested virtualization.
 * (Shared anonymous memory would be shmem, which hosts rarely give huge pages.) {@link #hugePages}
 * takes hugetlb pages the host reserved instead, for guests that must have them.
 */
public final class MappedMemory implements AutoCloseable {
    private final Arena arena = Arena.ofShared();
    private final MemorySegment segment;
    private final long address;
    private final long size;
    private final Fd memfd;
    private final boolean hugeTlb;

    private static final long HUGE_PAGE = 2L << 20;
    private static final long PAGE = 4096;

    private MappedMemory(long size, Fd memfd) {
        this(checkSize(size), memfd == null ? mapAnonymous(size)
                : Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_NORESERVE, memfd.fd(), 0, "memfd").address(),
                memfd, false);
    }

    private MappedMemory(long size, long address, Fd memfd, boolean hugeTlb) {
        this.address = address;
        this.size = size;
        this.memfd = memfd;
        this.hugeTlb = hugeTlb;
        this.segment = MemorySegment.ofAddress(address).reinterpret(size, arena, null);
    }

    private static long checkSize(long size) {
        if (size <= 0 || size % PAGE != 0) {
            throw new IllegalArgumentException("mapping size must be a positive multiple of 4096, got " + size);
        }
        return size;
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

    /**
     * Anonymous private memory from the host's reserved hugetlb pages of {@code pageSize} ({@code
     * MAP_HUGETLB}), not transparent huge pages: every page of the guest is a huge page, or the
     * mapping fails. The pages are reserved by this call (no {@code MAP_NORESERVE}), so a shortage
     * shows here, not as a SIGBUS when the guest first touches a page.
     *
     * @throws IllegalArgumentException when {@code size} is not a positive multiple of the page size
     * @throws IllegalStateException when the host has too few free pages of that size (the message says how to reserve them)
     */
    public static MappedMemory hugePages(long size, HugePageSize pageSize) {
        if (size <= 0 || size % pageSize.bytes() != 0) {
            throw new IllegalArgumentException("memory on " + pageSize.label() + " huge pages must be a positive multiple of "
                    + (pageSize.bytes() >> 20) + " MiB, got " + size + " bytes");
        }
        long address;
        try {
            address = Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | pageSize.mapFlags(),
                    -1, 0, pageSize.label() + " huge pages").address();
        } catch (NativeCallException e) {
            if (e.errno() != Libc.ENOMEM && e.errno() != Libc.EINVAL) {
                throw e;
            }
            pageSize.requireAvailable(size); // explains the shortage (pages taken since any earlier check) ...
            throw new IllegalStateException("mapping " + size + " bytes of " + pageSize.label() + " huge pages failed: " + e.getMessage(), e);
        }
        return new MappedMemory(size, address, null, true);
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

    /**
     * A private ({@code MAP_PRIVATE}) mapping of {@code [offset, offset + size)} of {@code file}, a
     * snapshot's memory file: pages are read from the file when first touched, a write copies its
     * page, and the file never changes, so one file can back many mappings at once, each seeing its
     * own writes only. {@code eager} reads every page in now ({@code MAP_POPULATE}) instead of on
     * first touch; for a private writable mapping the kernel then makes every page's private copy
     * too, so an eager mapping costs its whole size in memory at once, as loading the file would.
     * The file must not shrink while mapped: a page past its end would then fault. (A memory file
     * is replaced by renaming a new one over it, which leaves a mapped old file whole.)
     *
     * @throws IllegalArgumentException when offset or size is not page-aligned, or the file is
     *     shorter than {@code offset + size}
     * @throws NativeIoException when the file cannot be opened or mapped
     */
    public static MappedMemory mapFile(Path file, long offset, long size, boolean eager) throws NativeIoException {
        checkSize(size);
        if (offset < 0 || offset % PAGE != 0) {
            throw new IllegalArgumentException("memory file offset must be a non-negative multiple of 4096, got " + offset);
        }
        int fd;
        try {
            fd = Libc.open(file.toString(), Libc.O_RDONLY | Libc.O_CLOEXEC);
        } catch (NativeCallException e) {
            throw new NativeIoException("open(" + file + ")", e.errno());
        }
        // The mapping holds its own reference to the file, so the descriptor is closed once mapped.
        try (Fd _ = new Fd(fd, file.toString())) {
            long length = Libc.tryCall((arena, state) -> Libc.lseekRaw(state, fd, 0, Libc.SEEK_END));
            if (length < 0) {
                throw new NativeIoException("lseek(" + file + ", SEEK_END)", (int) -length);
            }
            if (offset > length || size > length - offset) {
                throw new IllegalArgumentException("memory file " + file + " is " + length + " bytes, too short for " + size
                        + " bytes of guest memory at offset " + offset + " (it needs " + (offset + size) + ")");
            }
            int flags = Libc.MAP_PRIVATE | Libc.MAP_NORESERVE | (eager ? Libc.MAP_POPULATE : 0);
            long address;
            try {
                address = Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE, flags, fd, offset, file.toString()).address();
            } catch (NativeCallException e) {
                throw new NativeIoException("mmap(" + file + ")", e.errno());
            }
            return new MappedMemory(size, address, null, false);
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

    /** The memfd behind this mapping, or null for anonymous memory and a memory file's mapping. */
    public Fd memfd() {
        return memfd;
    }

    /** Whether this memory is made of hugetlb pages ({@link #hugePages}), which cannot be given back 4 KiB at a time. */
    public boolean hugeTlb() {
        return hugeTlb;
    }

    /**
     * Gives the host back the memory behind {@code [offset, offset + length)} of this mapping, for
     * a guest that lent it (a balloon): afterwards the range costs nothing until it is touched again.
     * The advice depends on what backs the mapping, since {@code MADV_DONTNEED} alone frees only
     * private pages: anonymous memory reads as zeros afterwards; a memory file's private mapping drops
     * its private copies and reads as the file again (the file's clean page-cache pages are the
     * kernel's to reclaim); a memfd's shared pages are removed from the memfd itself
     * ({@code MADV_REMOVE}) and read as zeros, in every mapping of it.
     *
     * @throws IllegalArgumentException when the range is not 4 KiB-aligned or not inside the mapping
     * @throws IllegalStateException for hugetlb memory, which gives back only whole huge pages
     */
    public void release(long offset, long length) {
        if (offset < 0 || length <= 0 || offset % PAGE != 0 || length % PAGE != 0 || offset > size - length) {
            throw new IllegalArgumentException("cannot release [" + offset + ", +" + length + ") of a mapping of " + size
                    + " bytes: the range must be 4 KiB-aligned and inside it");
        }
        if (hugeTlb) {
            throw new IllegalStateException("memory on hugetlb pages cannot give back 4 KiB pages");
        }
        // The slice, passed to the call, keeps close() from unmapping the range under it.
        MemorySegment range = segment.asSlice(offset, length);
        if (memfd != null) {
            Libc.madviseOrThrow(range, Libc.MADV_REMOVE, "MADV_REMOVE");
        } else {
            Libc.madviseOrThrow(range, Libc.MADV_DONTNEED, "MADV_DONTNEED");
        }
    }

    /**
     * How much of this mapping is in RAM now, in bytes: the {@code Rss} of its entries in {@code
     * /proc/self/smaps} (hugetlb pages are counted apart by the kernel, as in {@code VmRSS}, and are
     * not included). An entry that reaches past the mapping (the kernel merged a neighbour into it)
     * counts in proportion to its part inside.
     *
     * @throws IOException when {@code /proc/self/smaps} cannot be read
     */
    public long residentBytes() throws IOException {
        return residentBytes(smaps());
    }

    /** {@link #residentBytes()} from lines of {@link #smaps()} read once for several mappings. */
    public long residentBytes(List<String> smaps) {
        return residentBytes(smaps, address, size);
    }

    /** The lines of {@code /proc/self/smaps} now. */
    public static List<String> smaps() throws IOException {
        return Files.readAllLines(Path.of("/proc/self/smaps"));
    }

    /** {@link #residentBytes()} over the lines of an smaps file, for {@code [address, address + size)}. */
    static long residentBytes(List<String> smaps, long address, long size) {
        long end = address + size;
        long resident = 0;
        long from = 0;
        long to = 0; // the entry being read: [from, to), empty when it misses the range
        for (String line : smaps) {
            int dash = line.indexOf('-');
            int space = line.indexOf(' ');
            if (dash > 0 && space > dash && HEX.matcher(line.substring(0, space)).matches()) {
                from = Long.parseUnsignedLong(line.substring(0, dash), 16);
                to = Long.parseUnsignedLong(line.substring(dash + 1, space), 16);
                if (to <= address || from >= end) {
                    to = from;
                }
            } else if (to > from && line.startsWith("Rss:")) {
                long kib = Long.parseLong(line.substring(4).replace("kB", "").strip());
                long inside = Math.min(to, end) - Math.max(from, address);
                resident += inside == to - from ? kib << 10 : (long) ((double) (kib << 10) * inside / (to - from));
                to = from;
            }
        }
        return resident;
    }

    private static final Pattern HEX = Pattern.compile("[0-9a-f]+-[0-9a-f]+");

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
