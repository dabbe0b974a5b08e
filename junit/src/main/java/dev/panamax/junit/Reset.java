package dev.panamax.junit;

/** What a {@link PanamaxTest} class's guest is like when each test begins. */
public enum Reset {
    /**
     * Every test starts from the same warm guest: the guest boots once for the class, is snapshotted once
     * its agent waits for commands, and before each test from the second on (when the test before ran a
     * command) that snapshot is restored, its memory mapped copy-on-write. What one test leaves (files,
     * processes, the kernel's state) the next does not see. Shared folders are the host's directories and
     * keep what a test wrote there; the restored guest finds again the files it held open and knew by their
     * paths, and with the share's default caching trusts what it had cached of names and attributes for up
     * to a second of its own time.
     */
    SNAPSHOT,
    /** One guest serves every test of the class in order: what one test leaves, the next sees. */
    NONE
}
