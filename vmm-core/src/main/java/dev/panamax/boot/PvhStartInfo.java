package dev.panamax.boot;

import dev.panamax.x86.E820Entry;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/**
 * {@code struct hvm_start_info} (version 1) from Xen's public/arch-x86/hvm/start_info.h, which a
 * kernel entered through PVH reads from EBX: the command line, the initrd as the first module, and
 * the memory map. Laid out here with the module list and memory map right after it.
 */
final class PvhStartInfo {
    private PvhStartInfo() {}

    static final int MAGIC = 0x336ec578;
    static final int SIZE = 56;
    private static final int MODULE_SIZE = 32;
    private static final int MEMMAP_ENTRY_SIZE = 24;

    /** The structure, its module list and its memory map, to be written at {@code address}. */
    static byte[] build(long address, long commandLine, long initrd, long initrdSize, List<E820Entry> map) {
        int modules = initrdSize > 0 ? 1 : 0;
        long moduleList = address + SIZE;
        long memmap = moduleList + (long) modules * MODULE_SIZE;
        ByteBuffer b = ByteBuffer.allocate(SIZE + modules * MODULE_SIZE + map.size() * MEMMAP_ENTRY_SIZE)
                .order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(MAGIC).putInt(1).putInt(0).putInt(modules);
        b.putLong(modules > 0 ? moduleList : 0).putLong(commandLine).putLong(0); // rsdp: none (no ACPI)
        b.putLong(memmap).putInt(map.size()).putInt(0);
        if (modules > 0) {
            b.putLong(initrd).putLong(initrdSize).putLong(0).putLong(0);
        }
        for (E820Entry e : map) {
            b.putLong(e.address()).putLong(e.size()).putInt(e.type()).putInt(0);
        }
        return b.array();
    }
}
