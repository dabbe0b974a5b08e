package dev.panamax.kvm;

import static dev.panamax.kvm.KvmAbi.KVM_SEGMENT;
import static dev.panamax.kvm.KvmAbi.offset;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemorySegment;

/** A segment register as KVM sees it ({@code struct kvm_segment}): the hidden descriptor cache included. */
public final class Segment {
    private static final long BASE = offset(KVM_SEGMENT, "base");
    private static final long LIMIT = offset(KVM_SEGMENT, "limit");
    private static final long SELECTOR = offset(KVM_SEGMENT, "selector");
    private static final long TYPE = offset(KVM_SEGMENT, "type");
    private static final long PRESENT = offset(KVM_SEGMENT, "present");
    private static final long DPL = offset(KVM_SEGMENT, "dpl");
    private static final long DB = offset(KVM_SEGMENT, "db");
    private static final long S = offset(KVM_SEGMENT, "s");
    private static final long L = offset(KVM_SEGMENT, "l");
    private static final long G = offset(KVM_SEGMENT, "g");
    private static final long AVL = offset(KVM_SEGMENT, "avl");
    private static final long UNUSABLE = offset(KVM_SEGMENT, "unusable");

    public long base;
    public int limit;
    public int selector;
    public int type;
    public boolean present, db, s, l, g, avl, unusable;
    public int dpl;

    static Segment readFrom(MemorySegment m, long at) {
        Segment seg = new Segment();
        seg.base = m.get(JAVA_LONG, at + BASE);
        seg.limit = m.get(JAVA_INT, at + LIMIT);
        seg.selector = Short.toUnsignedInt(m.get(JAVA_SHORT, at + SELECTOR));
        seg.type = m.get(JAVA_BYTE, at + TYPE);
        seg.present = m.get(JAVA_BYTE, at + PRESENT) != 0;
        seg.dpl = m.get(JAVA_BYTE, at + DPL);
        seg.db = m.get(JAVA_BYTE, at + DB) != 0;
        seg.s = m.get(JAVA_BYTE, at + S) != 0;
        seg.l = m.get(JAVA_BYTE, at + L) != 0;
        seg.g = m.get(JAVA_BYTE, at + G) != 0;
        seg.avl = m.get(JAVA_BYTE, at + AVL) != 0;
        seg.unusable = m.get(JAVA_BYTE, at + UNUSABLE) != 0;
        return seg;
    }

    void writeTo(MemorySegment m, long at) {
        m.set(JAVA_LONG, at + BASE, base);
        m.set(JAVA_INT, at + LIMIT, limit);
        m.set(JAVA_SHORT, at + SELECTOR, (short) selector);
        m.set(JAVA_BYTE, at + TYPE, (byte) type);
        m.set(JAVA_BYTE, at + PRESENT, flag(present));
        m.set(JAVA_BYTE, at + DPL, (byte) dpl);
        m.set(JAVA_BYTE, at + DB, flag(db));
        m.set(JAVA_BYTE, at + S, flag(s));
        m.set(JAVA_BYTE, at + L, flag(l));
        m.set(JAVA_BYTE, at + G, flag(g));
        m.set(JAVA_BYTE, at + AVL, flag(avl));
        m.set(JAVA_BYTE, at + UNUSABLE, flag(unusable));
    }

    private static byte flag(boolean b) {
        return (byte) (b ? 1 : 0);
    }

    @Override
    public String toString() {
        return String.format("sel=%04x base=%x limit=%x type=%x%s%s", selector, base, limit, type, l ? " L" : "", db ? " D" : "");
    }
}
