package dev.panamax.demo;

import dev.panamax.vm.PortIoDevice;

/** Port 0xEB: counts the writes, and does nothing else, so it measures the exit path alone. */
public final class CountingPort implements PortIoDevice {
    public static final int PORT = 0xEB;

    // Written by one vCPU thread; read after the VM exits (the exit hands it over under a lock).
    private long writes;

    @Override
    public int in(int offset, int size) {
        return 0;
    }

    @Override
    public void out(int offset, int size, int value) {
        writes++;
    }

    public long writes() {
        return writes;
    }
}
