package dev.panamax.devices;

import dev.panamax.vm.PortIoDevice;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntConsumer;

/**
 * QEMU's isa-debug-exit: a guest write of V (1 to 4 bytes) ends the VM with exit code
 * {@code (V << 1) | 1}, so a test guest can report success or failure as a process exit code
 * that can never be 0. Only the first write counts. Reads return 0.
 *
 * <p>The exit code goes to a callback; mapping it to a {@code VmExit} is the caller's business.
 */
public final class DebugExit implements PortIoDevice {

    /** QEMU's default port; registered with the access width the guest uses (1, 2 or 4). */
    public static final int DEFAULT_PORT = 0xF4;

    private final IntConsumer exitCode;
    private final AtomicBoolean exited = new AtomicBoolean();

    /** @param exitCode receives {@code (value << 1) | 1} on the guest's first write */
    public DebugExit(IntConsumer exitCode) {
        this.exitCode = Objects.requireNonNull(exitCode, "exitCode");
    }

    @Override
    public int in(int offset, int size) {
        return 0;
    }

    @Override
    public void out(int offset, int size, int value) {
        if (offset != 0) {
            return;
        }
        int width = size >= 4 ? 32 : Math.max(size, 1) * 8;
        long v = width == 32 ? Integer.toUnsignedLong(value) : value & ((1L << width) - 1);
        if (exited.compareAndSet(false, true)) {
            exitCode.accept((int) ((v << 1) | 1));
        }
    }
}
