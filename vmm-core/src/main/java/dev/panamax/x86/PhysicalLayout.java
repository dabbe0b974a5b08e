package dev.panamax.x86;

import java.util.ArrayList;
import java.util.List;

/**
 * Where things live in a Linux guest's physical address space. Low addresses hold the boot
 * structures (below 1 MiB, like a PC's BIOS area), the kernel loads at 1 MiB, and the 1 GiB below
 * 4 GiB is an MMIO hole (IOAPIC, local APIC, PCI BARs): RAM beyond 3 GiB continues at 4 GiB.
 */
public final class PhysicalLayout {
    private PhysicalLayout() {}

    public static final long GDT = 0x500;
    public static final long PVH_START_INFO = 0x6000;
    public static final long ZERO_PAGE = 0x7000;
    public static final long BOOT_STACK = 0x8ff0;
    public static final long PAGE_TABLES = 0x9000;
    public static final long COMMAND_LINE = 0x20000;
    public static final long COMMAND_LINE_MAX = 0x10000;
    /** The MP table sits in the last KiB below 640 KiB, where Linux looks for the EBDA. */
    public static final long MP_TABLE = 0x9fc00;
    public static final long LOW_RAM_END = 0xa0000;
    /** Where kernels are loaded (HIMEM). */
    public static final long KERNEL_LOAD = 0x100000;
    public static final long MMIO_HOLE_START = 0xc000_0000L;
    public static final long MMIO_HOLE_END = 0x1_0000_0000L;
    /** PCI BARs are placed in the first 256 MiB of the hole. */
    public static final long PCI_WINDOW_START = MMIO_HOLE_START;
    public static final long PCI_WINDOW_END = 0xd000_0000L;
    /** virtio-mmio devices follow, 4 KiB apart. */
    public static final long VIRTIO_MMIO_START = PCI_WINDOW_END;
    public static final long IOAPIC_ADDRESS = 0xfec0_0000L;
    public static final long LAPIC_ADDRESS = 0xfee0_0000L;
    /**
     * The page holding the reset vector (0xfffffff0), where a CPU starts after INIT. Linux puts
     * other CPUs into INIT when it reboots, and the boot CPU then runs from here: a few bytes of
     * "firmware" there reset the machine through the i8042, as a BIOS would lead to.
     */
    public static final long RESET_VECTOR_PAGE = 0xffff_f000L;
    /** The smallest guest that has room for the boot structures, a kernel and an initrd. */
    public static final long MINIMUM_MEMORY = 32L << 20;

    /** A RAM region in guest-physical space. */
    public record RamRegion(long address, long size) {}

    /** The RAM regions for {@code memorySize} bytes: below the hole, then above 4 GiB. */
    public static List<RamRegion> ramRegions(long memorySize) {
        List<RamRegion> regions = new ArrayList<>();
        long low = Math.min(memorySize, MMIO_HOLE_START);
        regions.add(new RamRegion(0, low));
        if (memorySize > low) {
            regions.add(new RamRegion(MMIO_HOLE_END, memorySize - low));
        }
        return regions;
    }

    /** The end of RAM below the MMIO hole. */
    public static long lowMemoryEnd(long memorySize) {
        return Math.min(memorySize, MMIO_HOLE_START);
    }

    /**
     * The memory map the guest is told: conventional memory up to the MP table, the MP table and the
     * legacy video/BIOS range reserved, then RAM from 1 MiB.
     */
    public static List<E820Entry> e820(long memorySize) {
        List<E820Entry> map = new ArrayList<>();
        map.add(new E820Entry(0, MP_TABLE, E820Entry.RAM));
        map.add(new E820Entry(MP_TABLE, KERNEL_LOAD - MP_TABLE, E820Entry.RESERVED));
        long low = lowMemoryEnd(memorySize);
        map.add(new E820Entry(KERNEL_LOAD, low - KERNEL_LOAD, E820Entry.RAM));
        map.add(new E820Entry(RESET_VECTOR_PAGE, 0x1000, E820Entry.RESERVED));
        if (memorySize > low) {
            map.add(new E820Entry(MMIO_HOLE_END, memorySize - low, E820Entry.RAM));
        }
        return map;
    }
}
