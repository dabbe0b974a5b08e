package dev.panamax.kvm;

import static dev.panamax.kvm.KvmAbi.KVM_DTABLE;
import static dev.panamax.kvm.KvmAbi.KVM_SREGS;
import static dev.panamax.kvm.KvmAbi.offset;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemorySegment;

/** A vCPU's system registers ({@code struct kvm_sregs}): segments, descriptor tables, control registers, EFER. */
public final class SpecialRegs {
    private static final String[] SEGMENTS = {"cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"};
    private static final long GDT = offset(KVM_SREGS, "gdt");
    private static final long IDT = offset(KVM_SREGS, "idt");
    private static final long TABLE_BASE = offset(KVM_DTABLE, "base");
    private static final long TABLE_LIMIT = offset(KVM_DTABLE, "limit");
    private static final long CR0 = offset(KVM_SREGS, "cr0");
    private static final long CR2 = offset(KVM_SREGS, "cr2");
    private static final long CR3 = offset(KVM_SREGS, "cr3");
    private static final long CR4 = offset(KVM_SREGS, "cr4");
    private static final long CR8 = offset(KVM_SREGS, "cr8");
    private static final long EFER = offset(KVM_SREGS, "efer");
    private static final long APIC_BASE = offset(KVM_SREGS, "apic_base");
    private static final long INTERRUPT_BITMAP = offset(KVM_SREGS, "interrupt_bitmap");

    public Segment cs, ds, es, fs, gs, ss, tr, ldt;
    /** Base and limit of the GDT and IDT. */
    public long gdtBase, idtBase;
    public int gdtLimit, idtLimit;
    public long cr0, cr2, cr3, cr4, cr8, efer, apicBase;
    /** Pending external interrupts (read-only for our purposes; written back unchanged). */
    public final long[] interruptBitmap = new long[4];

    /** The size of {@code struct kvm_sregs}, what {@link #toBytes()} returns. */
    public static final int SIZE = (int) KVM_SREGS.byteSize();

    /** These registers as {@code struct kvm_sregs} bytes, for saved state. */
    public byte[] toBytes() {
        return StructBytes.of(KVM_SREGS, this::writeTo);
    }

    /** Special registers from {@code struct kvm_sregs} bytes ({@link #SIZE} of them). */
    public static SpecialRegs fromBytes(byte[] bytes) {
        return StructBytes.decode(KVM_SREGS, bytes, SpecialRegs::readFrom);
    }

    static SpecialRegs readFrom(MemorySegment m) {
        SpecialRegs r = new SpecialRegs();
        Segment[] segs = new Segment[SEGMENTS.length];
        for (int i = 0; i < SEGMENTS.length; i++) {
            segs[i] = Segment.readFrom(m, offset(KVM_SREGS, SEGMENTS[i]));
        }
        r.cs = segs[0]; r.ds = segs[1]; r.es = segs[2]; r.fs = segs[3];
        r.gs = segs[4]; r.ss = segs[5]; r.tr = segs[6]; r.ldt = segs[7];
        r.gdtBase = m.get(JAVA_LONG, GDT + TABLE_BASE);
        r.gdtLimit = Short.toUnsignedInt(m.get(JAVA_SHORT, GDT + TABLE_LIMIT));
        r.idtBase = m.get(JAVA_LONG, IDT + TABLE_BASE);
        r.idtLimit = Short.toUnsignedInt(m.get(JAVA_SHORT, IDT + TABLE_LIMIT));
        r.cr0 = m.get(JAVA_LONG, CR0);
        r.cr2 = m.get(JAVA_LONG, CR2);
        r.cr3 = m.get(JAVA_LONG, CR3);
        r.cr4 = m.get(JAVA_LONG, CR4);
        r.cr8 = m.get(JAVA_LONG, CR8);
        r.efer = m.get(JAVA_LONG, EFER);
        r.apicBase = m.get(JAVA_LONG, APIC_BASE);
        for (int i = 0; i < 4; i++) {
            r.interruptBitmap[i] = m.get(JAVA_LONG, INTERRUPT_BITMAP + 8L * i);
        }
        return r;
    }

    void writeTo(MemorySegment m) {
        Segment[] segs = {cs, ds, es, fs, gs, ss, tr, ldt};
        for (int i = 0; i < SEGMENTS.length; i++) {
            segs[i].writeTo(m, offset(KVM_SREGS, SEGMENTS[i]));
        }
        m.set(JAVA_LONG, GDT + TABLE_BASE, gdtBase);
        m.set(JAVA_SHORT, GDT + TABLE_LIMIT, (short) gdtLimit);
        m.set(JAVA_LONG, IDT + TABLE_BASE, idtBase);
        m.set(JAVA_SHORT, IDT + TABLE_LIMIT, (short) idtLimit);
        m.set(JAVA_LONG, CR0, cr0);
        m.set(JAVA_LONG, CR2, cr2);
        m.set(JAVA_LONG, CR3, cr3);
        m.set(JAVA_LONG, CR4, cr4);
        m.set(JAVA_LONG, CR8, cr8);
        m.set(JAVA_LONG, EFER, efer);
        m.set(JAVA_LONG, APIC_BASE, apicBase);
        for (int i = 0; i < 4; i++) {
            m.set(JAVA_LONG, INTERRUPT_BITMAP + 8L * i, interruptBitmap[i]);
        }
    }

    @Override
    public String toString() {
        return String.format("cr0=%x cr3=%x cr4=%x efer=%x cs=[%s]", cr0, cr3, cr4, efer, cs);
    }
}
