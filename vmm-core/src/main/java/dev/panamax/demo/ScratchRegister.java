package dev.panamax.demo;

import dev.panamax.vm.MmioDevice;

/**
 * A one-register MMIO device for round-trip tests: a read returns the last value written plus one
 * (truncated to the access width), so a guest can tell a Java device answered, not plain memory.
 */
public final class ScratchRegister implements MmioDevice {
    public static final long ADDRESS = 0xD0000;
    public static final long SIZE = 0x1000;

    private volatile long lastWritten;

    @Override
    public long read(long offset, int size) {
        long value = lastWritten + 1;
        return size >= 8 ? value : value & ((1L << (8 * size)) - 1);
    }

    @Override
    public void write(long offset, int size, long value) {
        lastWritten = value;
    }

    public long lastWritten() {
        return lastWritten;
    }
}
