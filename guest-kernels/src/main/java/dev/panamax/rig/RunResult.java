package dev.panamax.rig;

import java.time.Duration;

/**
 * How a command ended where real KVM is.
 *
 * @param exitStatus its exit status (128 + signal when killed, as a shell reports it)
 * @param timedOut   whether it was killed because it outlived its timeout
 * @param elapsed    wall time from sending it to its end
 * @param output     its stdout and stderr, interleaved (the last {@value #KEPT_OUTPUT} characters)
 */
public record RunResult(int exitStatus, boolean timedOut, Duration elapsed, String output) {
    public static final int KEPT_OUTPUT = 1 << 20;

    public boolean succeeded() {
        return exitStatus == 0 && !timedOut;
    }
}
