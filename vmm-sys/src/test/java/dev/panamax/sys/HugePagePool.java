package dev.panamax.sys;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Reserves a few more huge pages for a test and gives them back: the reservation knob is set back
 * to its value on close. Where the pages cannot be had (no root, no such size, memory too
 * fragmented), the test is skipped with the reason, never passed silently.
 *
 * @param before the pages a mapping could have had before the reservation
 */
public record HugePagePool(HugePageSize size, Path knob, long knobValue, long before) implements AutoCloseable {

    public static HugePagePool reserve(HugePageSize size, long pages) throws IOException {
        assumeTrue(size.onHost(), "this host has no " + size.label() + " huge pages (" + size.pool() + " is missing)");
        Path knob = size.reserveKnob();
        assumeTrue(Files.isWritable(knob), knob + " is not writable here (needs root), so no huge pages can be reserved for the test");
        long value = Long.parseLong(Files.readString(knob).strip());
        long before = size.availablePages();
        HugePagePool pool = new HugePagePool(size, knob, value, before);
        try {
            Files.writeString(knob, String.valueOf(value + pages));
        } catch (IOException e) {
            pool.close();
            assumeTrue(false, "writing " + (value + pages) + " to " + knob + " failed: " + e.getMessage());
        }
        long after = size.availablePages();
        if (after < before + pages) {
            pool.close();
            assumeTrue(false, "the kernel reserved only " + (after - before) + " of " + pages + " " + size.label()
                    + " huge pages asked for through " + knob + " (memory too fragmented?)");
        }
        return pool;
    }

    @Override
    public void close() throws IOException {
        Files.writeString(knob, String.valueOf(knobValue));
    }
}
