package dev.panamax.boot;

import dev.panamax.x86.E820Entry;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The "zero page" ({@code struct boot_params}, {@code <asm/bootparam.h>}) a kernel entered through
 * the 64-bit boot protocol reads: the setup header, the command line and initrd location, and the
 * e820 memory map. Offsets are declared once, with their C names, and checked against the header by
 * a test.
 */
public final class BootParams {
    private static final Map<String, Integer> fields = new LinkedHashMap<>();

    public static final int SIZE = 4096;
    static final int E820_ENTRIES = at("e820_entries", 0x1e8);
    static final int SETUP_SECTS = at("hdr.setup_sects", 0x1f1);
    static final int BOOT_FLAG = at("hdr.boot_flag", 0x1fe);
    static final int JUMP = at("hdr.jump", 0x200);
    static final int HEADER = at("hdr.header", 0x202);
    static final int VERSION = at("hdr.version", 0x206);
    static final int TYPE_OF_LOADER = at("hdr.type_of_loader", 0x210);
    static final int LOADFLAGS = at("hdr.loadflags", 0x211);
    static final int RAMDISK_IMAGE = at("hdr.ramdisk_image", 0x218);
    static final int RAMDISK_SIZE = at("hdr.ramdisk_size", 0x21c);
    static final int HEAP_END_PTR = at("hdr.heap_end_ptr", 0x224);
    static final int CMD_LINE_PTR = at("hdr.cmd_line_ptr", 0x228);
    static final int INITRD_ADDR_MAX = at("hdr.initrd_addr_max", 0x22c);
    static final int KERNEL_ALIGNMENT = at("hdr.kernel_alignment", 0x230);
    static final int XLOADFLAGS = at("hdr.xloadflags", 0x236);
    static final int CMDLINE_SIZE = at("hdr.cmdline_size", 0x238);
    static final int INIT_SIZE = at("hdr.init_size", 0x260);
    static final int E820_TABLE = at("e820_table", 0x2d0);
    static final int E820_ENTRY_SIZE = 20;
    static final int E820_MAX_ENTRIES = 128;

    static final int BOOT_FLAG_MAGIC = 0xaa55;
    static final int HEADER_MAGIC = 0x53726448; // "HdrS"
    static final int LOADED_HIGH = 0x01;
    static final int CAN_USE_HEAP = 0x80;
    static final int XLF_KERNEL_64 = 0x01;
    static final int UNDEFINED_LOADER = 0xff;

    /** C member path -> offset, for the ABI test. */
    static final Map<String, Integer> FIELDS = Collections.unmodifiableMap(fields);

    private static int at(String cName, int offset) {
        fields.put(cName, offset);
        return offset;
    }

    private final ByteBuffer page = ByteBuffer.allocate(SIZE).order(ByteOrder.LITTLE_ENDIAN);

    /**
     * A zero page starting from a bzImage's setup header ({@code setupHeader} is the file's first
     * sector or more; the header runs from 0x1f1 to 0x202 plus the jump's offset byte), or from
     * nothing for a vmlinux, which carries no header.
     */
    BootParams(byte[] setupHeader) {
        if (setupHeader != null) {
            int end = Math.min(0x202 + Byte.toUnsignedInt(setupHeader[0x201]), setupHeader.length);
            page.put(SETUP_SECTS, setupHeader, SETUP_SECTS, end - SETUP_SECTS);
        } else {
            page.putShort(BOOT_FLAG, (short) BOOT_FLAG_MAGIC);
            page.putInt(HEADER, HEADER_MAGIC);
            page.putInt(KERNEL_ALIGNMENT, 0x1000000);
        }
        page.put(TYPE_OF_LOADER, (byte) UNDEFINED_LOADER);
        page.put(LOADFLAGS, (byte) (page.get(LOADFLAGS) | LOADED_HIGH | CAN_USE_HEAP));
        page.putShort(HEAP_END_PTR, (short) 0xfe00);
    }

    void setCommandLine(long address) {
        page.putInt(CMD_LINE_PTR, (int) address);
    }

    void setInitrd(long address, long size) {
        page.putInt(RAMDISK_IMAGE, (int) address);
        page.putInt(RAMDISK_SIZE, (int) size);
    }

    void setMemoryMap(List<E820Entry> map) {
        if (map.size() > E820_MAX_ENTRIES) {
            throw new BootException("the e820 map has " + map.size() + " entries; the zero page holds " + E820_MAX_ENTRIES);
        }
        page.put(E820_ENTRIES, (byte) map.size());
        for (int i = 0; i < map.size(); i++) {
            int at = E820_TABLE + i * E820_ENTRY_SIZE;
            page.putLong(at, map.get(i).address()).putLong(at + 8, map.get(i).size()).putInt(at + 16, map.get(i).type());
        }
    }

    byte[] bytes() {
        return page.array();
    }
}
