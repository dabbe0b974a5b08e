package dev.panamax.vm;

import dev.panamax.sys.MappedMemory;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Where each region of a VM's guest memory lies in a snapshot's memory file: its guest-physical
 * address, its size and its offset in the file, all page-aligned. A restore checks a map read from
 * a snapshot against the VM's own memory layout, then {@linkplain #mapInto maps} the file at each
 * region.
 *
 * @param entries the regions, by guest address
 */
public record MemoryMap(List<Entry> entries) {
    /** More regions than any layout Panamax builds (RAM below the MMIO hole, above it, the reset vector page). */
    public static final int MAX_REGIONS = 64;
    private static final long PAGE = DirtyPages.PAGE_SIZE;

    /** One region: guest-physical {@code [guestAddress, guestAddress + size)} at {@code fileOffset} in the memory file. */
    public record Entry(long guestAddress, long size, long fileOffset) {
        public long end() {
            return guestAddress + size;
        }

        public long fileEnd() {
            return fileOffset + size;
        }

        @Override
        public String toString() {
            return String.format("[0x%x, 0x%x) at file offset 0x%x", guestAddress, end(), fileOffset);
        }
    }

    /** A range of guest-physical address space that a VM's layout gives to RAM. */
    public record RamRange(long guestAddress, long size) {}

    public MemoryMap {
        entries = List.copyOf(entries);
    }

    /** The map of {@code memory} in a memory file: its regions one after another from offset 0. */
    public static MemoryMap of(GuestMemory memory) {
        return of(memory.regions().stream().map(r -> new RamRange(r.guestAddress(), r.size())).toList());
    }

    /** The map of {@code ranges} (a VM's RAM layout) in a memory file: one after another from offset 0. */
    public static MemoryMap of(List<RamRange> ranges) {
        List<Entry> entries = new ArrayList<>();
        long offset = 0;
        for (RamRange r : ranges) {
            entries.add(new Entry(r.guestAddress(), r.size(), offset));
            offset += r.size(); // sizes are whole pages, so every offset stays page-aligned
        }
        return new MemoryMap(entries);
    }

    /** The size of the memory file this map needs: the end of its last region in the file. */
    public long fileSize() {
        return entries.stream().mapToLong(Entry::fileEnd).max().orElse(0);
    }

    /** The guest memory it maps, in bytes. */
    public long memorySize() {
        return entries.stream().mapToLong(Entry::size).sum();
    }

    /** Writes the map: the region count, then each region's guest address, size and file offset. */
    public void saveState(StateWriter out) {
        out.i32(entries.size());
        for (Entry e : entries) {
            out.i64(e.guestAddress()).i64(e.size()).i64(e.fileOffset());
        }
    }

    /**
     * Reads a map {@link #saveState} wrote and checks it before anything is mapped: at most {@link
     * #MAX_REGIONS} regions, by guest address; every address, size and offset page-aligned; no two
     * regions overlapping in guest memory or in the file; each region inside the file ({@code
     * memoryFileLength} bytes) and inside one of the RAM ranges of {@code layout}, the VM's own
     * memory layout; and the sizes summing to the layout's RAM.
     */
    public static MemoryMap readState(StateReader in, List<RamRange> layout, long memoryFileLength) {
        int count = in.count(MAX_REGIONS, "memory region");
        if (count == 0) {
            throw in.fail("the memory map has no regions");
        }
        long layoutSize = layout.stream().mapToLong(RamRange::size).sum();
        Entry[] entries = new Entry[count];
        long total = 0;
        for (int i = 0; i < count; i++) {
            long address = in.i64("memory region " + i + " guest address");
            long size = in.i64("memory region " + i + " size");
            long offset = in.i64("memory region " + i + " file offset");
            if (address < 0 || address % PAGE != 0) {
                throw in.fail(String.format("memory region %d starts at guest address 0x%x, not on a page boundary", i, address));
            }
            if (size <= 0 || size % PAGE != 0 || size > Long.MAX_VALUE - address) {
                throw in.fail(String.format("memory region %d is 0x%x bytes, not a positive number of whole pages", i, size));
            }
            if (offset < 0 || offset % PAGE != 0) {
                throw in.fail(String.format("memory region %d is at memory file offset 0x%x, not on a page boundary", i, offset));
            }
            if (offset > memoryFileLength || size > memoryFileLength - offset) {
                throw in.fail(String.format("memory region %d lies at [0x%x, 0x%x) of the memory file, which is only 0x%x bytes", i,
                        offset, offset + size, memoryFileLength));
            }
            Entry entry = new Entry(address, size, offset);
            if (i > 0 && address < entries[i - 1].end()) {
                throw in.fail("memory region " + i + " " + entry + " starts before region " + (i - 1) + " " + entries[i - 1]
                        + " ends: the regions overlap or are out of order");
            }
            for (int j = 0; j < i; j++) {
                if (offset < entries[j].fileEnd() && entries[j].fileOffset() < offset + size) {
                    throw in.fail("memory regions " + j + " " + entries[j] + " and " + i + " " + entry + " overlap in the memory file");
                }
            }
            if (layout.stream().noneMatch(r -> address >= r.guestAddress() && address - r.guestAddress() <= r.size() - size)) {
                throw in.fail("memory region " + i + " " + entry + " is not inside this VM's guest RAM " + describe(layout));
            }
            entries[i] = entry;
            total += size; // cannot overflow: the regions are disjoint and inside the layout
        }
        if (total != layoutSize) {
            throw in.fail("the memory map's regions hold " + total + " bytes of guest memory; this VM has " + layoutSize);
        }
        return new MemoryMap(List.of(entries));
    }

    private static String describe(List<RamRange> layout) {
        StringBuilder text = new StringBuilder();
        for (RamRange r : layout) {
            text.append(text.isEmpty() ? "" : ", ").append(String.format("[0x%x, 0x%x)", r.guestAddress(), r.guestAddress() + r.size()));
        }
        return text.toString();
    }

    /**
     * Adds each region to {@code vm} as a private mapping of {@code memoryFile} ({@link
     * MappedMemory#mapFile}): pages come in when first touched, or all now when {@code eager}, and
     * the guest's writes never reach the file. On failure the VM may hold some of the regions; the
     * caller closes it.
     */
    public void mapInto(Vm vm, Path memoryFile, boolean eager) throws IOException {
        for (Entry e : entries) {
            vm.addMemory(e.guestAddress(), MappedMemory.mapFile(memoryFile, e.fileOffset(), e.size(), eager));
        }
    }
}
