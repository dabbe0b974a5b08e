package dev.panamax.vm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import dev.panamax.sys.IoVector;
import dev.panamax.sys.MappedMemory;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Guest RAM: non-overlapping regions of guest-physical address space, each backed by a host
 * mapping. Every access is bounds-checked against the regions and a range that is not wholly inside
 * one region throws {@link GuestMemoryException}, so guest-supplied addresses never reach host
 * memory unchecked. Values are little-endian (x86). Safe for concurrent use; regions are only added.
 *
 * <p>While {@linkplain #startTracking() tracking} is on, every write through this object marks its
 * pages in a bitmap per region: these are the pages Panamax's own devices wrote (virtio-blk reads,
 * virtio-net receive), which KVM's dirty log does not see. A {@link #slice} may be written by its
 * holder, so its pages are marked when it is handed out; a {@link #retainedSlice} (a ring a device
 * keeps and writes for as long as it runs) is marked again at every {@link #takeWrittenPages()}.
 */
public final class GuestMemory implements AutoCloseable {

    /** One contiguous region: guest-physical {@code [guestAddress, guestAddress + size)}. */
    public record Region(long guestAddress, long size, MappedMemory backing) {
        public long end() {
            return guestAddress + size;
        }

        boolean contains(long address, long length) {
            // Written so that no sum can overflow: address and length are guest-controlled.
            return length >= 0 && address >= guestAddress && length <= size
                    && address - guestAddress <= size - length;
        }
    }

    /** A region and the bitmap of its pages written through this object (bit i of word i / 64 is page i). */
    private record Slot(Region region, long[] written) {}

    /**
     * A {@link #retainedSlice}: its range is marked at every take for as long as its holder keeps the
     * segment; once the collector has cleared it, it waits in {@link #dropped} to leave {@link #retained}.
     */
    private static final class Retained extends WeakReference<MemorySegment> {
        final long address;
        final long length;

        Retained(MemorySegment segment, long address, long length, ReferenceQueue<MemorySegment> dropped) {
            super(segment, dropped);
            this.address = address;
            this.length = length;
        }
    }

    private static final VarHandle WORDS = MethodHandles.arrayElementVarHandle(long[].class);
    private static final int PAGE_SHIFT = 12;

    private volatile Slot[] slots = new Slot[0];
    /** Checked on every write; off, marking costs this one volatile read. */
    private volatile boolean tracking;
    /**
     * The live retained slices. A set by identity, emptied of cleared ones through {@link #dropped}, so that
     * each retainedSlice costs constant time however many a guest makes (a driver that resets its device
     * in a loop makes new rings each time). Guarded by this.
     */
    private final Set<Retained> retained = new HashSet<>();
    private final ReferenceQueue<MemorySegment> dropped = new ReferenceQueue<>();

    /**
     * Adds a region backed by {@code backing} at {@code guestAddress}.
     *
     * @throws IllegalArgumentException when it overlaps an existing region or is not page-aligned
     */
    public synchronized Region addRegion(long guestAddress, MappedMemory backing) {
        long size = backing.size();
        if (guestAddress < 0 || guestAddress % 4096 != 0 || guestAddress > Long.MAX_VALUE - size) {
            throw new IllegalArgumentException(String.format("bad guest memory region at 0x%x, size 0x%x", guestAddress, size));
        }
        for (Slot s : slots) {
            Region r = s.region();
            if (guestAddress < r.end() && r.guestAddress() < guestAddress + size) {
                throw new IllegalArgumentException(String.format(
                        "guest memory region [0x%x, 0x%x) overlaps [0x%x, 0x%x)", guestAddress, guestAddress + size, r.guestAddress(), r.end()));
            }
        }
        Region region = new Region(guestAddress, size, backing);
        List<Slot> all = new ArrayList<>(List.of(slots));
        all.add(new Slot(region, new long[DirtyPages.words(size)])); // 32 KiB of bitmap per GiB
        all.sort(Comparator.comparingLong(s -> s.region().guestAddress()));
        slots = all.toArray(Slot[]::new);
        return region;
    }

    /** Takes back a region KVM refused, before any guest ran; its backing stays with the caller. */
    synchronized void removeRegion(Region region) {
        slots = java.util.Arrays.stream(slots).filter(s -> s.region() != region).toArray(Slot[]::new);
    }

    /** The regions, by guest address. */
    public List<Region> regions() {
        return java.util.Arrays.stream(slots).map(Slot::region).toList();
    }

    /** Total bytes of guest RAM. */
    public long size() {
        long total = 0;
        for (Slot s : slots) {
            total += s.region().size();
        }
        return total;
    }

    /** Bytes of guest RAM in host RAM now, over every region ({@link MappedMemory#residentBytes()}), from one read of smaps. */
    public long residentBytes() throws IOException {
        List<String> smaps = MappedMemory.smaps();
        long total = 0;
        for (Slot s : slots) {
            total += s.region().backing().residentBytes(smaps);
        }
        return total;
    }

    public boolean contains(long address, long length) {
        return find(address, length) != null;
    }

    private Slot find(long address, long length) {
        for (Slot s : slots) {
            if (s.region().contains(address, length)) {
                return s;
            }
        }
        return null;
    }

    private Region region(long address, long length) {
        return slot(address, length).region();
    }

    private Slot slot(long address, long length) {
        Slot s = find(address, length);
        if (s == null) {
            throw new GuestMemoryException(address, length);
        }
        return s;
    }

    /**
     * Marks the pages of {@code [address, address + length)} while tracking. Called after the write,
     * so that a take racing with it either sees the mark or leaves it for the next take: marking
     * first, a take between the mark and the write would copy the page without the write and clear
     * its mark.
     */
    private void marked(Slot s, long address, long length) {
        if (tracking) {
            mark(s, address, length);
        }
    }

    private static void mark(Slot s, long address, long length) {
        if (length <= 0) {
            return;
        }
        long offset = address - s.region().guestAddress();
        long last = (offset + length - 1) >>> PAGE_SHIFT;
        for (long page = offset >>> PAGE_SHIFT; page <= last; page++) {
            int word = (int) (page >>> 6);
            long bit = 1L << page;
            // Reading first keeps a page written over and over from contending on its word.
            if (((long) WORDS.getVolatile(s.written(), word) & bit) == 0) {
                WORDS.getAndBitwiseOr(s.written(), word, bit);
            }
        }
    }

    /**
     * A zero-copy view of {@code [address, address + length)}, for device I/O. It stops working
     * (throws) once the memory is closed, so a device holding one cannot touch unmapped pages.
     * The holder may write it: while tracking, its pages are marked as written now, so it must be
     * written before the next {@link #takeWrittenPages()} (devices finish their requests before a
     * snapshot takes the pages). A view kept and written for longer is a {@link #retainedSlice}.
     */
    public MemorySegment slice(long address, long length) {
        Slot s = slot(address, length);
        marked(s, address, length);
        return s.region().backing().segment().asSlice(address - s.region().guestAddress(), length);
    }

    /**
     * Appends {@code [address, address + length)} to {@code vector} for a transfer into it, without a
     * view object: a {@link #slice} for vectored I/O (its pages marked as written now, as a slice's are).
     */
    public void addWritable(IoVector vector, long address, long length) {
        Slot s = slot(address, length);
        marked(s, address, length);
        vector.add(s.region().backing().segment(), address - s.region().guestAddress(), length);
    }

    /**
     * A read-only view of {@code [address, address + length)}, for data a device only reads (a
     * request's buffers for a disk write or a packet to send): unlike {@link #slice} it marks no
     * page as written.
     */
    public MemorySegment readOnlySlice(long address, long length) {
        Region r = region(address, length);
        return r.backing().segment().asSlice(address - r.guestAddress(), length).asReadOnly();
    }

    /**
     * A {@link #slice} its holder keeps and writes for as long as it runs, such as a virtqueue's
     * used ring: its pages are marked as written at every {@link #takeWrittenPages()} until the
     * holder drops the segment (it is held weakly here, so no release call is needed; until the
     * collector clears it, its pages are still reported, which costs a few extra pages only).
     */
    public MemorySegment retainedSlice(long address, long length) {
        MemorySegment slice = slice(address, length);
        synchronized (this) {
            removeDropped();
            retained.add(new Retained(slice, address, length, dropped));
        }
        return slice;
    }

    /** How many retained slices are listed (those the collector cleared and that are not yet forgotten included). */
    synchronized int retainedSliceCount() {
        return retained.size();
    }

    /** Forgets the retained slices the collector has cleared since the last call. Called holding this. */
    private void removeDropped() {
        for (Reference<? extends MemorySegment> r; (r = dropped.poll()) != null; ) {
            retained.remove(r);
        }
    }

    /**
     * Starts marking the pages written through this object, from a clean bitmap. Writes before this
     * call are not reported.
     */
    public synchronized void startTracking() {
        for (Slot s : slots) {
            java.util.Arrays.fill(s.written(), 0); // no writer marks while tracking is off
        }
        tracking = true;
    }

    /** Stops marking written pages. */
    public synchronized void stopTracking() {
        tracking = false;
    }

    public boolean tracking() {
        return tracking;
    }

    /**
     * The pages written through this object since tracking started or since the last take,
     * including every live {@link #retainedSlice}, per region by guest address; the bitmaps start
     * over from clean. Each word is swapped atomically and a write is marked after it lands, so a
     * write through this object that races with the take is reported now or in the next take, never
     * lost; a slice is marked when handed out, so its writes must end before the take.
     */
    public synchronized DirtyPages takeWrittenPages() {
        if (!tracking) {
            throw new IllegalStateException("guest memory writes are not being tracked");
        }
        Slot[] now = slots;
        removeDropped();
        for (Retained r : retained) {
            Slot s = find(r.address, r.length);
            if (s != null && !r.refersTo(null)) {
                mark(s, r.address, r.length);
            }
        }
        List<DirtyPages.Range> ranges = new ArrayList<>(now.length);
        for (Slot s : now) {
            long[] words = new long[s.written().length];
            for (int i = 0; i < words.length; i++) {
                words[i] = (long) WORDS.getAndSet(s.written(), i, 0L);
            }
            ranges.add(new DirtyPages.Range(s.region().guestAddress(), s.region().size(), words));
        }
        return new DirtyPages(ranges);
    }

    /**
     * Gives the host back the pages of {@code [address, address + length)}, which the guest lent
     * (a balloon's inflate): see {@link MappedMemory#release}. Their content changes (to zeros, or
     * to a memory file's), a change no dirty log sees, so while tracking they are marked as written:
     * a diff snapshot then holds them as they now read.
     *
     * @throws GuestMemoryException when the range is not inside one region
     * @throws IllegalArgumentException when it is not 4 KiB-aligned
     * @throws IllegalStateException when the region is on hugetlb pages
     */
    public void release(long address, long length) {
        Slot s = slot(address, length);
        s.region().backing().release(address - s.region().guestAddress(), length);
        marked(s, address, length);
    }

    public byte readByte(long address) {
        Region r = region(address, 1);
        return r.backing().segment().get(JAVA_BYTE, address - r.guestAddress());
    }

    public short readShort(long address) {
        Region r = region(address, 2);
        return r.backing().segment().get(JAVA_SHORT_UNALIGNED, address - r.guestAddress());
    }

    public int readInt(long address) {
        Region r = region(address, 4);
        return r.backing().segment().get(JAVA_INT_UNALIGNED, address - r.guestAddress());
    }

    public long readLong(long address) {
        Region r = region(address, 8);
        return r.backing().segment().get(JAVA_LONG_UNALIGNED, address - r.guestAddress());
    }

    public void writeByte(long address, byte value) {
        Slot s = slot(address, 1);
        s.region().backing().segment().set(JAVA_BYTE, address - s.region().guestAddress(), value);
        marked(s, address, 1);
    }

    public void writeShort(long address, short value) {
        Slot s = slot(address, 2);
        s.region().backing().segment().set(JAVA_SHORT_UNALIGNED, address - s.region().guestAddress(), value);
        marked(s, address, 2);
    }

    public void writeInt(long address, int value) {
        Slot s = slot(address, 4);
        s.region().backing().segment().set(JAVA_INT_UNALIGNED, address - s.region().guestAddress(), value);
        marked(s, address, 4);
    }

    public void writeLong(long address, long value) {
        Slot s = slot(address, 8);
        s.region().backing().segment().set(JAVA_LONG_UNALIGNED, address - s.region().guestAddress(), value);
        marked(s, address, 8);
    }

    /** Copies {@code length} bytes from guest memory at {@code address} into {@code target[offset..]}. */
    public void read(long address, byte[] target, int offset, int length) {
        Region r = region(address, length);
        MemorySegment.copy(r.backing().segment(), JAVA_BYTE, address - r.guestAddress(), target, offset, length);
    }

    /** Copies {@code source[offset..offset + length)} into guest memory at {@code address}. */
    public void write(long address, byte[] source, int offset, int length) {
        Slot s = slot(address, length);
        MemorySegment.copy(source, offset, s.region().backing().segment(), JAVA_BYTE, address - s.region().guestAddress(), length);
        marked(s, address, length);
    }

    public void write(long address, byte[] source) {
        write(address, source, 0, source.length);
    }

    /** Unmaps every region; later accesses through this object or its slices throw. */
    @Override
    public synchronized void close() {
        for (Slot s : slots) {
            s.region().backing().close();
        }
    }
}
