package dev.panamax.boot;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Tiny stand-ins for Linux kernels, in both formats, whose entry code reports what the boot
 * protocol handed it on the debug console (port 0xE9) and then spins. They use integer
 * instructions only, so they run on a host whose KVM only emulates.
 */
public final class SyntheticKernels {
    private SyntheticKernels() {}

    /**
     * 64-bit code entered with RSI = zero page: prints the command line's first character and the
     * number of e820 entries. mov eax,[rsi+0x228]; mov al,[rax]; mov dx,0xe9; out dx,al;
     * movzx eax,byte [rsi+0x1e8]; add al,'0'; out dx,al; jmp $
     */
    static final byte[] LINUX64_ENTRY = {
        (byte) 0x8b, (byte) 0x86, 0x28, 0x02, 0, 0, (byte) 0x8a, 0x00, 0x66, (byte) 0xba, (byte) 0xe9, 0x00, (byte) 0xee,
        0x0f, (byte) 0xb6, (byte) 0x86, (byte) 0xe8, 0x01, 0, 0, 0x04, 0x30, (byte) 0xee, (byte) 0xeb, (byte) 0xfe};

    /**
     * 32-bit code entered with EBX = hvm_start_info: prints the command line's first character and
     * the number of modules. mov eax,[ebx+0x18]; mov al,[eax]; mov dx,0xe9; out dx,al;
     * mov al,[ebx+0xc]; add al,'0'; out dx,al; jmp $
     */
    static final byte[] PVH_ENTRY = {
        (byte) 0x8b, 0x43, 0x18, (byte) 0x8a, 0x00, 0x66, (byte) 0xba, (byte) 0xe9, 0x00, (byte) 0xee,
        (byte) 0x8a, 0x43, 0x0c, 0x04, 0x30, (byte) 0xee, (byte) 0xeb, (byte) 0xfe};

    /** A bzImage: one setup sector after the boot sector, then the protected-mode kernel with the 64-bit entry at +0x200. */
    public static byte[] bzImage(int protocolVersion, int loadflags, int xloadflags) {
        return bzImage(protocolVersion, loadflags, xloadflags, LINUX64_ENTRY);
    }

    /** A bzImage whose 64-bit entry runs {@code entry}, 64-bit code using integer instructions only. */
    public static byte[] bzImageRunning(byte[] entry) {
        return bzImage(0x020f, 0x01, 0x01, entry);
    }

    /**
     * 64-bit code that forever increments the first quadword of each page in turn of guest-physical
     * {@code [0x2000000, end)}, starting over at the first: with {@code end} 0x2001000 a counter in
     * one page, with a larger end a sweep that dirties every page of the range on each pass.
     * mov rdi,0x2000000; l: inc qword [rdi]; add rdi,0x1000; cmp rdi,end; jb l; jmp start
     */
    public static byte[] pageSweep(int end) {
        ByteBuffer b = ByteBuffer.allocate(28).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {0x48, (byte) 0xc7, (byte) 0xc7}).putInt(0x2000000);
        b.put(new byte[] {0x48, (byte) 0xff, 0x07});
        b.put(new byte[] {0x48, (byte) 0x81, (byte) 0xc7}).putInt(0x1000);
        b.put(new byte[] {0x48, (byte) 0x81, (byte) 0xff}).putInt(end);
        b.put(new byte[] {0x72, (byte) 0xed, (byte) 0xeb, (byte) 0xe4});
        return b.array();
    }

    private static byte[] bzImage(int protocolVersion, int loadflags, int xloadflags, byte[] entry) {
        ByteBuffer b = ByteBuffer.allocate(1024 + 0x200 + entry.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(0x1f1, (byte) 1); // setup_sects
        b.putShort(0x1fe, (short) 0xaa55);
        b.put(0x200, (byte) 0xeb).put(0x201, (byte) 0x6a); // jump over the header, which ends at 0x26c
        b.putInt(0x202, 0x53726448);
        b.putShort(0x206, (short) protocolVersion);
        b.put(0x211, (byte) loadflags);
        b.putInt(0x22c, 0x7fffffff); // initrd_addr_max
        b.putInt(0x230, 0x200000); // kernel_alignment
        b.putShort(0x236, (short) xloadflags);
        b.putInt(0x238, 2048); // cmdline_size
        b.putInt(0x260, 0x100000); // init_size
        b.put(1024 + 0x200, entry);
        return b.array();
    }

    public static byte[] bzImage() {
        return bzImage(0x020f, 0x01, 0x01);
    }

    /** An ELF vmlinux: one PT_LOAD at 1 MiB holding the PVH entry code, and a PT_NOTE with XEN_ELFNOTE_PHYS32_ENTRY. */
    public static byte[] vmlinux(boolean withPvhNote) {
        return vmlinux(withPvhNote, 0x100000);
    }

    /** The same, its segment loaded at {@code physicalAddress}. */
    public static byte[] vmlinux(boolean withPvhNote, long physicalAddress) {
        return TinyVmlinux.of(PVH_ENTRY, physicalAddress, withPvhNote);
    }

    public static Path write(Path dir, String name, byte[] bytes) throws IOException {
        return Files.write(dir.resolve(name), bytes);
    }
}
