package dev.panamax.junit;

import java.time.Duration;

/**
 * How a command run by {@link Guest#exec} ended.
 *
 * @param exitStatus its exit status as a shell gives it (128 + N for signal N; 127 when it was not found),
 *                   or 124 when it outlived its timeout
 * @param stdout     its standard output, as UTF-8 text
 * @param stderr     its standard error, apart from stdout
 * @param duration   from the guest server taking the request to the command's end
 * @param timedOut   whether it outlived its timeout and was killed (with what it started)
 */
public record ExecResult(int exitStatus, String stdout, String stderr, Duration duration, boolean timedOut) {
    /** The status of a command that outlived its timeout, as coreutils' {@code timeout} and {@code panamax exec} give it. */
    public static final int TIMED_OUT = 124;

    /** Whether it exited with status 0 in time. */
    public boolean succeeded() {
        return exitStatus == 0 && !timedOut;
    }
}
