package dev.panamax.kvm;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** The local APIC's register page as KVM_GET_LAPIC returns it: 1024 bytes, registers at their MMIO offsets. */
public final class LapicState {
    public static final int SIZE = 1024;
    /** Local vector table entries for LINT0 and LINT1. */
    public static final int LVT_LINT0 = 0x350;
    public static final int LVT_LINT1 = 0x360;

    private final ByteBuffer regs;

    LapicState(byte[] bytes) {
        if (bytes.length != SIZE) {
            throw new IllegalArgumentException("LAPIC state is " + SIZE + " bytes, got " + bytes.length);
        }
        this.regs = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** A LAPIC state from the {@link #SIZE} bytes {@link #toBytes()} gave (saved state). */
    public static LapicState fromBytes(byte[] bytes) {
        return new LapicState(bytes.clone());
    }

    /** A copy of the whole register page, for saved state. */
    public byte[] toBytes() {
        return regs.array().clone();
    }

    /** The 32-bit register at {@code offset} (a multiple of 16 below 1024). */
    public int register(int offset) {
        return regs.getInt(checked(offset));
    }

    public void setRegister(int offset, int value) {
        regs.putInt(checked(offset), value);
    }

    byte[] bytes() {
        return regs.array();
    }

    private static int checked(int offset) {
        if (offset < 0 || offset >= SIZE || offset % 16 != 0) {
            throw new IllegalArgumentException("no LAPIC register at offset 0x" + Integer.toHexString(offset));
        }
        return offset;
    }
}
