package dev.panamax.demo;

import dev.panamax.vm.PortIoDevice;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The debug console on port 0xE9 (Bochs' and QEMU's "debugcon"): every byte written is kept and,
 * when asked, copied to an output stream. Reading the port returns 0xE9, which is how guests detect
 * it. Remembers which threads wrote, so tests can see every vCPU thread ran guest code.
 */
public final class DebugConsole implements PortIoDevice {
    public static final int PORT = 0xE9;

    private final ByteArrayOutputStream captured = new ByteArrayOutputStream();
    private final OutputStream echo;
    private final Set<String> writerThreads = ConcurrentHashMap.newKeySet();

    /** @param echo where to copy output as it arrives, or null */
    public DebugConsole(OutputStream echo) {
        this.echo = echo;
    }

    @Override
    public int in(int offset, int size) {
        return PORT;
    }

    @Override
    public synchronized void out(int offset, int size, int value) {
        writerThreads.add(Thread.currentThread().getName());
        captured.write(value);
        if (echo != null) {
            try {
                echo.write(value);
                if (value == '\n') {
                    echo.flush();
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    public synchronized String text() {
        return captured.toString(StandardCharsets.UTF_8);
    }

    /** Names of the threads (vcpu-N) that wrote to the console. */
    public Set<String> writerThreads() {
        return Set.copyOf(writerThreads);
    }
}
