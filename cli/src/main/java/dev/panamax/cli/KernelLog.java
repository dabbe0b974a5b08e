package dev.panamax.cli;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * What {@code exec} keeps of the guest's console: its last lines (printed when something fails) and
 * the kernel's Oops, BUG and WARN lines (reported at the end). Fed line by line from the console's thread.
 */
final class KernelLog {
    /** The console lines kept for a failure report. */
    static final int KEPT_LINES = 60;
    /** The warning lines kept (more are counted). */
    static final int KEPT_WARNINGS = 20;

    /** How Linux starts the report of a WARN_ON, an Oops, a BUG and their kin (lib/bug.c, arch/x86/kernel/dumpstack.c). */
    private static final Pattern WARNING = Pattern.compile(
            "(WARNING: CPU: \\d+ PID: |Oops: |BUG: |general protection fault|kernel BUG at |UBSAN: )");

    private final ArrayDeque<String> tail = new ArrayDeque<>();
    private final List<String> warnings = new ArrayList<>();
    private int warningCount;

    synchronized void line(String line) {
        if (tail.size() == KEPT_LINES) {
            tail.removeFirst();
        }
        tail.addLast(line);
        if (WARNING.matcher(line).find()) {
            warningCount++;
            if (warnings.size() < KEPT_WARNINGS) {
                warnings.add(line.strip());
            }
        }
    }

    synchronized List<String> tail() {
        return List.copyOf(tail);
    }

    synchronized List<String> warnings() {
        return List.copyOf(warnings);
    }

    synchronized int warningCount() {
        return warningCount;
    }
}
