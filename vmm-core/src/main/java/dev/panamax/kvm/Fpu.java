package dev.panamax.kvm;

import static dev.panamax.kvm.KvmAbi.KVM_FPU;
import static dev.panamax.kvm.KvmAbi.offset;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemorySegment;

/** x87 and SSE state ({@code struct kvm_fpu}). */
public final class Fpu {
    private static final long FPR = offset(KVM_FPU, "fpr");
    private static final long FCW = offset(KVM_FPU, "fcw");
    private static final long FSW = offset(KVM_FPU, "fsw");
    private static final long FTWX = offset(KVM_FPU, "ftwx");
    private static final long LAST_OPCODE = offset(KVM_FPU, "last_opcode");
    private static final long LAST_IP = offset(KVM_FPU, "last_ip");
    private static final long LAST_DP = offset(KVM_FPU, "last_dp");
    private static final long XMM = offset(KVM_FPU, "xmm");
    private static final long MXCSR = offset(KVM_FPU, "mxcsr");

    /** x87 registers st0-st7, 16 bytes each. */
    public final byte[] fpr = new byte[8 * 16];
    public int fcw, fsw, ftwx, lastOpcode;
    public long lastIp, lastDp;
    /** xmm0-xmm15, 16 bytes each. */
    public final byte[] xmm = new byte[16 * 16];
    public int mxcsr;

    static Fpu readFrom(MemorySegment m) {
        Fpu f = new Fpu();
        MemorySegment.copy(m, JAVA_BYTE, FPR, f.fpr, 0, f.fpr.length);
        f.fcw = Short.toUnsignedInt(m.get(JAVA_SHORT, FCW));
        f.fsw = Short.toUnsignedInt(m.get(JAVA_SHORT, FSW));
        f.ftwx = Byte.toUnsignedInt(m.get(JAVA_BYTE, FTWX));
        f.lastOpcode = Short.toUnsignedInt(m.get(JAVA_SHORT, LAST_OPCODE));
        f.lastIp = m.get(JAVA_LONG, LAST_IP);
        f.lastDp = m.get(JAVA_LONG, LAST_DP);
        MemorySegment.copy(m, JAVA_BYTE, XMM, f.xmm, 0, f.xmm.length);
        f.mxcsr = m.get(JAVA_INT, MXCSR);
        return f;
    }

    void writeTo(MemorySegment m) {
        MemorySegment.copy(fpr, 0, m, JAVA_BYTE, FPR, fpr.length);
        m.set(JAVA_SHORT, FCW, (short) fcw);
        m.set(JAVA_SHORT, FSW, (short) fsw);
        m.set(JAVA_BYTE, FTWX, (byte) ftwx);
        m.set(JAVA_SHORT, LAST_OPCODE, (short) lastOpcode);
        m.set(JAVA_LONG, LAST_IP, lastIp);
        m.set(JAVA_LONG, LAST_DP, lastDp);
        MemorySegment.copy(xmm, 0, m, JAVA_BYTE, XMM, xmm.length);
        m.set(JAVA_INT, MXCSR, mxcsr);
    }
}
