package dev.panamax.x86;

import dev.panamax.kvm.Regs;
import dev.panamax.kvm.Segment;
import dev.panamax.kvm.SpecialRegs;
import dev.panamax.kvm.VcpuFd;
import dev.panamax.vm.GuestMemory;

/**
 * Puts a vCPU into the processor mode a guest starts in: real mode at a given segment, or 64-bit
 * long mode with a flat GDT and identity-mapped page tables built in guest memory (what the Linux
 * 64-bit boot protocol expects, too).
 */
public final class CpuMode {
    private CpuMode() {}

    static final long CR0_PE = 1L;
    static final long CR0_ET = 1L << 4;
    static final long CR0_PG = 1L << 31;
    static final long CR4_PAE = 1L << 5;
    static final long EFER_LME = 1L << 8;
    static final long EFER_LMA = 1L << 10;
    private static final long PAGE_PRESENT_WRITABLE = 0x3;
    private static final long PAGE_HUGE = 0x80;

    /** Bytes of guest memory {@link #enterLongMode} uses for its page tables (PML4, PDPT, one PD). */
    public static final long PAGE_TABLES_SIZE = 3 * 4096;
    /** Bytes of guest memory {@link #enterLongMode} uses for its GDT. */
    public static final long GDT_SIZE = 4 * 8;
    /** GDT selectors of the flat 64-bit code and data segments and the TSS. */
    public static final int CODE_SELECTOR = 0x08;
    public static final int DATA_SELECTOR = 0x10;
    public static final int TSS_SELECTOR = 0x18;

    /** Real mode, executing at {@code segment:ip}; the other data segments are left at reset values. */
    public static void enterRealMode(VcpuFd vcpu, int segment, int ip) {
        SpecialRegs sregs = vcpu.getSpecialRegs();
        sregs.cs.selector = segment;
        sregs.cs.base = (long) segment << 4;
        vcpu.setSpecialRegs(sregs);
        Regs regs = new Regs();
        regs.rip = ip;
        regs.rflags = 0x2; // bit 1 is reserved and always set
        vcpu.setRegs(regs);
    }

    /**
     * 64-bit mode, paging on with the first GiB identity-mapped by 2 MiB pages, flat segments, and
     * RIP at {@code entry}. Writes the page tables at {@code pageTables} ({@link #PAGE_TABLES_SIZE}
     * bytes, 4 KiB-aligned) and the GDT at {@code gdt} ({@link #GDT_SIZE} bytes). Other general
     * registers are zero; callers set the ones their guest reads.
     */
    public static void enterLongMode(GuestMemory memory, VcpuFd vcpu, long pageTables, long gdt, long entry, long stack) {
        if (pageTables % 4096 != 0) {
            throw new IllegalArgumentException("page tables must be 4 KiB-aligned: 0x" + Long.toHexString(pageTables));
        }
        long pml4 = pageTables;
        long pdpt = pageTables + 4096;
        long pd = pageTables + 2 * 4096;
        memory.write(pml4, new byte[(int) PAGE_TABLES_SIZE]);
        memory.writeLong(pml4, pdpt | PAGE_PRESENT_WRITABLE);
        memory.writeLong(pdpt, pd | PAGE_PRESENT_WRITABLE);
        for (long i = 0; i < 512; i++) {
            memory.writeLong(pd + 8 * i, (i << 21) | PAGE_PRESENT_WRITABLE | PAGE_HUGE);
        }

        Segment code = flatSegment(CODE_SELECTOR, 0xb); // execute/read, accessed
        code.l = true;
        SpecialRegs sregs = flatSegments(memory, vcpu, gdt, code);
        sregs.cr3 = pml4;
        sregs.cr4 |= CR4_PAE;
        sregs.cr0 |= CR0_PE | CR0_PG | CR0_ET;
        sregs.efer |= EFER_LME | EFER_LMA;
        vcpu.setSpecialRegs(sregs);

        Regs regs = new Regs();
        regs.rip = entry;
        regs.rsp = stack;
        regs.rbp = stack;
        regs.rflags = 0x2;
        vcpu.setRegs(regs);
    }

    /**
     * 32-bit protected mode without paging, flat segments, EIP at {@code entry}: the state the PVH
     * boot ABI enters a kernel in. Writes the GDT at {@code gdt} ({@link #GDT_SIZE} bytes).
     */
    public static void enterProtectedMode(GuestMemory memory, VcpuFd vcpu, long gdt, long entry) {
        Segment code = flatSegment(CODE_SELECTOR, 0xb);
        code.db = true;
        SpecialRegs sregs = flatSegments(memory, vcpu, gdt, code);
        sregs.cr0 = (sregs.cr0 | CR0_PE | CR0_ET) & ~CR0_PG;
        sregs.cr4 = 0;
        sregs.efer = 0;
        vcpu.setSpecialRegs(sregs);
        Regs regs = new Regs();
        regs.rip = entry;
        regs.rflags = 0x2;
        vcpu.setRegs(regs);
    }

    /** Writes a GDT of null, {@code code}, flat data and a busy TSS, and loads it and them into the segment registers. */
    private static SpecialRegs flatSegments(GuestMemory memory, VcpuFd vcpu, long gdt, Segment code) {
        Segment data = flatSegment(DATA_SELECTOR, 0x3); // read/write, accessed
        data.db = true;
        Segment tss = flatSegment(TSS_SELECTOR, 0xb); // busy TSS
        tss.s = false;
        tss.g = false;
        tss.limit = 0x67;
        memory.writeLong(gdt, 0);
        memory.writeLong(gdt + CODE_SELECTOR, descriptor(code));
        memory.writeLong(gdt + DATA_SELECTOR, descriptor(data));
        memory.writeLong(gdt + TSS_SELECTOR, descriptor(tss));

        SpecialRegs sregs = vcpu.getSpecialRegs();
        sregs.cs = code;
        sregs.ds = data;
        sregs.es = data;
        sregs.fs = data;
        sregs.gs = data;
        sregs.ss = data;
        sregs.tr = tss;
        sregs.gdtBase = gdt;
        sregs.gdtLimit = (int) GDT_SIZE - 1;
        sregs.idtBase = 0;
        sregs.idtLimit = 0;
        return sregs;
    }

    private static Segment flatSegment(int selector, int type) {
        Segment s = new Segment();
        s.selector = selector;
        s.base = 0;
        s.limit = 0xffffffff; // KVM takes the byte-granular limit: 0xfffff pages of 4 KiB
        s.type = type;
        s.present = true;
        s.s = true;
        s.g = true;
        return s;
    }

    /** The 8-byte GDT descriptor matching {@code s}, whose limit is in bytes as KVM reports it. */
    static long descriptor(Segment s) {
        long limit = s.g ? (s.limit & 0xffffffffL) >>> 12 : s.limit & 0xfffffL;
        long base = s.base & 0xffffffffL;
        long access = (s.type & 0xf) | (s.s ? 0x10 : 0) | ((s.dpl & 3) << 5) | (s.present ? 0x80 : 0);
        long flags = (s.avl ? 1 : 0) | (s.l ? 2 : 0) | (s.db ? 4 : 0) | (s.g ? 8 : 0);
        return (limit & 0xffff)
                | (base & 0xffffff) << 16
                | access << 40
                | (limit >>> 16) << 48
                | flags << 52
                | (base >>> 24) << 56;
    }
}
