package dev.panamax.junit;

/** What a {@link PanamaxTest} class's guest is like when each test begins. */
public enum Reset {
    /**
     * Every test starts from the same warm guest: the guest boots once for the class, is snapshotted once
     * its agent waits for commands, and before each test from the second on (when the test before ran a
     * command) that snapshot is restored, its memory mapped copy-on-write. What one test leaves (files,
     * processes, the kernel's state) the next does not see. Not for a class with shared folders, whose VM
     * cannot be snapshotted: such a class runs as with {@link #NONE} and says so in its report.
     */
    SNAPSHOT,
    /** One guest serves every test of the class in order: what one test leaves, the next sees. */
    NONE
}
