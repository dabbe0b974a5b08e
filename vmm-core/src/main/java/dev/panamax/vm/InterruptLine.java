package dev.panamax.vm;

/** An interrupt request line from a device into the guest's interrupt controller. */
public interface InterruptLine {
    /** Asserts ({@code true}) or deasserts the line. Level-style devices hold it while they need service. */
    void set(boolean asserted);

    /** An edge: assert, then deassert. */
    default void pulse() {
        set(true);
        set(false);
    }
}
