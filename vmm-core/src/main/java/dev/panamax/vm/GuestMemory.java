package dev.panamax.vm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import dev.panamax.sys.MappedMemory;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Guest RAM: non-overlapping regions of guest-physical address space, each backed by a host
 * mapping. Every access is bounds-checked against the regions and a range that is not wholly inside
 * one region throws {@link GuestMemoryException}, so guest-supplied addresses never reach host
 * memory unchecked. Values are little-endian (x86). Safe for concurrent use; regions are only added.
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

    private volatile Region[] regions = new Region[0];

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
        for (Region r : regions) {
            if (guestAddress < r.end() && r.guestAddress() < guestAddress + size) {
                throw new IllegalArgumentException(String.format(
                        "guest memory region [0x%x, 0x%x) overlaps [0x%x, 0x%x)", guestAddress, guestAddress + size, r.guestAddress(), r.end()));
            }
        }
        Region region = new Region(guestAddress, size, backing);
        List<Region> all = new ArrayList<>(List.of(regions));
        all.add(region);
        all.sort(Comparator.comparingLong(Region::guestAddress));
        regions = all.toArray(Region[]::new);
        return region;
    }

    /** Takes back a region KVM refused, before any guest ran; its backing stays with the caller. */
    synchronized void removeRegion(Region region) {
        regions = java.util.Arrays.stream(regions).filter(r -> r != region).toArray(Region[]::new);
    }

    public List<Region> regions() {
        return List.of(regions);
    }

    /** Total bytes of guest RAM. */
    public long size() {
        long total = 0;
        for (Region r : regions) {
            total += r.size();
        }
        return total;
    }

    public boolean contains(long address, long length) {
        return find(address, length) != null;
    }

    private Region find(long address, long length) {
        for (Region r : regions) {
            if (r.contains(address, length)) {
                return r;
            }
        }
        return null;
    }

    private Region region(long address, long length) {
        Region r = find(address, length);
        if (r == null) {
            throw new GuestMemoryException(address, length);
        }
        return r;
    }

    /**
     * A zero-copy view of {@code [address, address + length)}, for device I/O. It stops working
     * (throws) once the memory is closed, so a device holding one cannot touch unmapped pages.
     */
    public MemorySegment slice(long address, long length) {
        Region r = region(address, length);
        return r.backing().segment().asSlice(address - r.guestAddress(), length);
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
        Region r = region(address, 1);
        r.backing().segment().set(JAVA_BYTE, address - r.guestAddress(), value);
    }

    public void writeShort(long address, short value) {
        Region r = region(address, 2);
        r.backing().segment().set(JAVA_SHORT_UNALIGNED, address - r.guestAddress(), value);
    }

    public void writeInt(long address, int value) {
        Region r = region(address, 4);
        r.backing().segment().set(JAVA_INT_UNALIGNED, address - r.guestAddress(), value);
    }

    public void writeLong(long address, long value) {
        Region r = region(address, 8);
        r.backing().segment().set(JAVA_LONG_UNALIGNED, address - r.guestAddress(), value);
    }

    /** Copies {@code length} bytes from guest memory at {@code address} into {@code target[offset..]}. */
    public void read(long address, byte[] target, int offset, int length) {
        MemorySegment.copy(slice(address, length), JAVA_BYTE, 0, target, offset, length);
    }

    /** Copies {@code source[offset..offset + length)} into guest memory at {@code address}. */
    public void write(long address, byte[] source, int offset, int length) {
        MemorySegment.copy(source, offset, slice(address, length), JAVA_BYTE, 0, length);
    }

    public void write(long address, byte[] source) {
        write(address, source, 0, source.length);
    }

    /** Unmaps every region; later accesses through this object or its slices throw. */
    @Override
    public synchronized void close() {
        for (Region r : regions) {
            r.backing().close();
        }
    }
}
