package dev.panamax.vm.state;

/**
 * A part of a VM whose state a snapshot holds: a device, a transport, the VM's in-kernel devices.
 * A snapshot calls {@link #quiesce()} on every part, then {@link #saveState} in the device
 * manager's order; a restore builds the same parts and calls {@link #restoreState} on each before
 * the VM starts.
 */
public interface Stateful {
    /**
     * Completes the work in flight (requests taken from a queue and not yet answered) and holds new
     * work back, so that the state written next is whole. Called with the vCPUs paused. The default
     * is for a part that never has work in flight outside a vCPU exit.
     */
    default void quiesce() {}

    /** Lets work go on again after {@link #quiesce()}, when the VM resumes without a restore. */
    default void resumeWork() {}

    /** Writes every field a restore needs. */
    void saveState(StateWriter out);

    /**
     * Takes the state {@link #saveState} wrote, validating every value against this part's own
     * configuration (sizes, counts, ranges, guest addresses) before any of it is used.
     *
     * @throws StateFormatException when a value is malformed or does not fit this part
     */
    void restoreState(StateReader in);
}
