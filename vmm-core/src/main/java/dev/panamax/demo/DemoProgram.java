package dev.panamax.demo;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/** The bare guest programs assembled from {@code src/main/asm}, with the mode each starts in. */
public enum DemoProgram {
    HELLO_REAL_MODE("hello-real", false, "greets on the debug console in real mode, round-trips a value through MMIO, halts"),
    HELLO_LONG_MODE("hello-long", true, "the same in 64-bit long mode with Panamax's page tables"),
    SMP_HELLO("smp-hello", true, "every vCPU greets with its index, under a spinlock, then halts"),
    PORT_LOOP("port-loop", false, "N port writes, each a vCPU exit handled by the VMM (the exit benchmark)"),
    SPIN("spin", false, "N loop iterations with no exits (the acceleration calibration)"),
    COUNTER("counter", false, "increments a counter in memory for ever without exiting");

    private final String resource;
    private final boolean longMode;
    private final String description;

    DemoProgram(String resource, boolean longMode, String description) {
        this.resource = resource;
        this.longMode = longMode;
        this.description = description;
    }

    /** The name on the command line, e.g. {@code hello-real}. */
    public String programName() {
        return resource;
    }

    public boolean longMode() {
        return longMode;
    }

    public String description() {
        return description;
    }

    /** The flat binary, to be loaded at {@link DemoGuest#LOAD_ADDRESS}. */
    public byte[] code() {
        try (InputStream in = DemoProgram.class.getResourceAsStream(resource + ".bin")) {
            if (in == null) {
                throw new IllegalStateException("demo guest " + resource + ".bin is missing from the class path (the build assembles it)");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static DemoProgram byName(String name) {
        for (DemoProgram p : values()) {
            if (p.resource.equals(name)) {
                return p;
            }
        }
        throw new IllegalArgumentException("no demo program named '" + name + "'");
    }
}
