package dev.panamax.guest;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/** Reads the program header types of a 64-bit little-endian ELF file (enough to tell a static binary). */
final class ElfFile {
    static final int PT_DYNAMIC = 2;
    static final int PT_INTERP = 3;
    private static final int EM_X86_64 = 62;

    private ElfFile() {}

    /** The p_type of every program header; fails when {@code elf} is not an x86-64 ELF64 executable. */
    static List<Integer> programHeaderTypes(byte[] elf) {
        ByteBuffer b = ByteBuffer.wrap(elf).order(ByteOrder.LITTLE_ENDIAN);
        if (elf.length < 64 || b.getInt(0) != 0x464c457f) throw new IllegalArgumentException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1) throw new IllegalArgumentException("not a 64-bit little-endian ELF file");
        if (b.getShort(0x12) != EM_X86_64) throw new IllegalArgumentException("not an x86-64 ELF file");
        long phoff = b.getLong(0x20);
        int phentsize = Short.toUnsignedInt(b.getShort(0x36));
        int phnum = Short.toUnsignedInt(b.getShort(0x38));
        if (phnum == 0 || phentsize < 4 || phoff < 0 || phoff + (long) phentsize * phnum > elf.length) {
            throw new IllegalArgumentException("program headers out of the file");
        }
        List<Integer> types = new ArrayList<>();
        for (int i = 0; i < phnum; i++) types.add(b.getInt((int) phoff + i * phentsize));
        return types;
    }
}
