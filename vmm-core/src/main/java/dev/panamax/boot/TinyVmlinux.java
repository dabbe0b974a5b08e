package dev.panamax.boot;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The smallest ELF {@code vmlinux} {@link KernelImage} accepts: one PT_LOAD segment holding
 * {@code code}, and a PT_NOTE with XEN_ELFNOTE_PHYS32_ENTRY pointing at it, so a PVH boot enters
 * {@code code} in 32-bit protected mode with paging off. For a VM that runs a few instructions
 * instead of Linux: the start-up cache's training run, and tests.
 */
public final class TinyVmlinux {
    private static final int CODE_OFFSET = 0x100;
    private static final int NOTE_OFFSET = 0x200;
    private static final int SIZE = 0x300;

    private TinyVmlinux() {}

    /**
     * The file's bytes: {@code code} (at most 256 bytes) loaded at {@code physicalAddress}; without
     * {@code pvhNote} the file has no PT_NOTE, and Panamax boots it by no protocol.
     */
    public static byte[] of(byte[] code, long physicalAddress, boolean pvhNote) {
        if (code.length > NOTE_OFFSET - CODE_OFFSET) {
            throw new IllegalArgumentException("entry code of " + code.length + " bytes; at most " + (NOTE_OFFSET - CODE_OFFSET));
        }
        ByteBuffer b = ByteBuffer.allocate(SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, 0x464c457f).put(4, (byte) 2).put(5, (byte) 1).put(6, (byte) 1); // ELF, 64-bit, little-endian, version 1
        b.putShort(16, (short) 2).putShort(18, (short) 62).putInt(20, 1); // ET_EXEC, x86-64
        b.putLong(24, physicalAddress); // e_entry: unused by a PVH boot, which takes the note's
        b.putLong(32, 64).putShort(52, (short) 64).putShort(54, (short) 56).putShort(56, (short) (pvhNote ? 2 : 1));
        b.putInt(64, 1).putInt(68, 5).putLong(72, CODE_OFFSET).putLong(80, 0xffffffff81000000L).putLong(88, physicalAddress)
                .putLong(96, code.length).putLong(104, 0x1000).putLong(112, 0x1000); // PT_LOAD, R+X, one page
        if (pvhNote) {
            b.putInt(120, 4).putInt(124, 4).putLong(128, NOTE_OFFSET).putLong(144, NOTE_OFFSET).putLong(152, 20).putLong(160, 20);
            b.putInt(NOTE_OFFSET, 4).putInt(NOTE_OFFSET + 4, 4).putInt(NOTE_OFFSET + 8, 18); // namesz, descsz, PHYS32_ENTRY
            b.put(NOTE_OFFSET + 12, new byte[] {'X', 'e', 'n', 0}).putInt(NOTE_OFFSET + 16, (int) physicalAddress);
        }
        b.put(CODE_OFFSET, code);
        return b.array();
    }
}
