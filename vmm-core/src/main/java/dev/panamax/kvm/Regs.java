package dev.panamax.kvm;

import static dev.panamax.kvm.KvmAbi.KVM_REGS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.MemorySegment;

/** A vCPU's general-purpose registers ({@code struct kvm_regs}): a plain mutable record of values. */
public final class Regs {
    public long rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    public long r8, r9, r10, r11, r12, r13, r14, r15;
    public long rip, rflags;

    /** The size of {@code struct kvm_regs}, what {@link #toBytes()} returns. */
    public static final int SIZE = (int) KVM_REGS.byteSize();

    /** These registers as {@code struct kvm_regs} bytes, for saved state. */
    public byte[] toBytes() {
        return StructBytes.of(KVM_REGS, this::writeTo);
    }

    /** Registers from {@code struct kvm_regs} bytes ({@link #SIZE} of them). */
    public static Regs fromBytes(byte[] bytes) {
        return StructBytes.decode(KVM_REGS, bytes, Regs::readFrom);
    }

    static Regs readFrom(MemorySegment s) {
        Regs r = new Regs();
        long[] v = s.asSlice(0, KVM_REGS.byteSize()).toArray(JAVA_LONG);
        r.rax = v[0]; r.rbx = v[1]; r.rcx = v[2]; r.rdx = v[3];
        r.rsi = v[4]; r.rdi = v[5]; r.rsp = v[6]; r.rbp = v[7];
        r.r8 = v[8]; r.r9 = v[9]; r.r10 = v[10]; r.r11 = v[11];
        r.r12 = v[12]; r.r13 = v[13]; r.r14 = v[14]; r.r15 = v[15];
        r.rip = v[16]; r.rflags = v[17];
        return r;
    }

    void writeTo(MemorySegment s) {
        long[] v = {rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags};
        MemorySegment.copy(MemorySegment.ofArray(v), 0, s, 0, KVM_REGS.byteSize());
    }

    @Override
    public String toString() {
        return String.format(
                "rip=%016x rflags=%08x rax=%016x rbx=%016x rcx=%016x rdx=%016x rsi=%016x rdi=%016x rsp=%016x rbp=%016x",
                rip, rflags, rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp);
    }
}
