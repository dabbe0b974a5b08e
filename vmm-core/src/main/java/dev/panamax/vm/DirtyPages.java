package dev.panamax.vm;

import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.util.List;

/**
 * The pages of guest memory written since some moment (the start of tracking, or the last take),
 * one bitmap per memory region: bit {@code i % 64} of word {@code i / 64} stands for the region's
 * page {@code i}, as in KVM's dirty log. A diff snapshot holds these pages and this map of them.
 */
public final class DirtyPages {
    /** The page size the bitmaps count in. */
    public static final long PAGE_SIZE = 4096;

    /** The pages of the region at guest-physical {@code [guestAddress, guestAddress + size)}. */
    public record Range(long guestAddress, long size, long[] bitmap) {
        public Range {
            if (bitmap.length != words(size)) {
                throw new IllegalArgumentException("a bitmap of " + size + " bytes of memory has " + words(size) + " words, not "
                        + bitmap.length);
            }
        }

        /** How many pages the region has. */
        public long pages() {
            return size / PAGE_SIZE;
        }

        /** Whether the region's page {@code page} (counted from its start) was written. */
        public boolean isDirty(long page) {
            return (bitmap[(int) (page >>> 6)] & 1L << page) != 0;
        }

        /** How many of its pages were written. */
        public long count() {
            long n = 0;
            for (long word : bitmap) {
                n += Long.bitCount(word);
            }
            return n;
        }
    }

    private final List<Range> ranges;

    public DirtyPages(List<Range> ranges) {
        this.ranges = List.copyOf(ranges);
    }

    /** The words of a bitmap of {@code size} bytes of memory. */
    static int words(long size) {
        return Math.toIntExact((size / PAGE_SIZE + 63) / 64);
    }

    /** The bitmaps, one per region, by guest address. */
    public List<Range> ranges() {
        return ranges;
    }

    /** How many pages were written, in all. */
    public long count() {
        return ranges.stream().mapToLong(Range::count).sum();
    }

    /** Whether the page holding guest-physical {@code address} was written (false outside every region). */
    public boolean isDirty(long address) {
        for (Range r : ranges) {
            if (address >= r.guestAddress() && address - r.guestAddress() < r.size()) {
                return r.isDirty((address - r.guestAddress()) / PAGE_SIZE);
            }
        }
        return false;
    }

    /** The bitmap of the region at {@code guestAddress}. */
    public Range range(long guestAddress) {
        for (Range r : ranges) {
            if (r.guestAddress() == guestAddress) {
                return r;
            }
        }
        throw new IllegalArgumentException(String.format("no memory region at 0x%x", guestAddress));
    }

    /** The pages written in either: these and {@code other}, taken of the same memory. */
    public DirtyPages or(DirtyPages other) {
        List<Range> union = new java.util.ArrayList<>(ranges.size());
        for (Range r : ranges) {
            long[] words = r.bitmap().clone();
            long[] theirs = other.range(r.guestAddress()).bitmap();
            for (int i = 0; i < words.length; i++) {
                words[i] |= theirs[i];
            }
            union.add(new Range(r.guestAddress(), r.size(), words));
        }
        return new DirtyPages(union);
    }

    /** Adds the pages of {@code bitmap} (KVM's dirty log of one slot) to the region at {@code guestAddress}. */
    void add(long guestAddress, long[] bitmap) {
        Range r = range(guestAddress);
        for (int i = 0; i < r.bitmap().length && i < bitmap.length; i++) {
            r.bitmap()[i] |= bitmap[i];
        }
    }

    /** Writes the bitmaps: their count, then per region its guest address, size and words. */
    public void saveState(StateWriter out) {
        out.i32(ranges.size());
        for (Range r : ranges) {
            out.i64(r.guestAddress()).i64(r.size()).i64s(r.bitmap());
        }
    }

    /**
     * Reads what {@link #saveState} wrote, for the memory laid out by {@code map} (already
     * validated): one bitmap per region of the map, in its order, of the region's size, with no
     * page marked past the region's end.
     */
    public static DirtyPages readState(StateReader in, MemoryMap map) {
        List<MemoryMap.Entry> entries = map.entries();
        int count = in.count(entries.size(), "dirty page bitmap");
        if (count != entries.size()) {
            throw in.fail("the dirty page bitmaps are " + count + ", and the memory map has " + entries.size() + " regions");
        }
        Range[] ranges = new Range[count];
        for (int i = 0; i < count; i++) {
            MemoryMap.Entry entry = entries.get(i);
            long address = in.i64("dirty page bitmap " + i + " guest address");
            long size = in.i64("dirty page bitmap " + i + " size");
            if (address != entry.guestAddress() || size != entry.size()) {
                throw in.fail(String.format("dirty page bitmap %d is for [0x%x, +0x%x), and memory region %d is [0x%x, +0x%x)", i,
                        address, size, i, entry.guestAddress(), entry.size()));
            }
            int words = words(size);
            long[] bitmap = in.i64s(words, "dirty page bitmap " + i + " word");
            if (bitmap.length != words) {
                throw in.fail("dirty page bitmap " + i + " has " + bitmap.length + " words; a region of " + size + " bytes needs " + words);
            }
            long pages = size / PAGE_SIZE;
            if (pages % 64 != 0 && bitmap[words - 1] >>> (pages % 64) != 0) {
                throw in.fail("dirty page bitmap " + i + " marks pages past the end of its region (" + pages + " pages)");
            }
            ranges[i] = new Range(address, size, bitmap);
        }
        return new DirtyPages(List.of(ranges));
    }
}
