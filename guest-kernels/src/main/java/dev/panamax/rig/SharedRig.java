package dev.panamax.rig;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.function.BiFunction;

/**
 * A rig shared by many commands (a test run's: a rig start is 10-15 s): started on first use,
 * replaced when it has stopped, stopped by {@link #close} and started again by the next command.
 *
 * <p>QEMU's software CPU under the rig has been seen to hang (both of its CPUs in soft lockup) or
 * crash a JVM. When the rig stops under a command (a hung rig is stopped by {@link Rig#run}'s
 * pings), a fresh rig is started and the command runs once more, saying so on stderr (at most
 * {@link #RUNS_AGAIN_AFTER_STOPS} times): the command never finished, so its test has not failed
 * yet. A command with input runs again only if it had taken none of it (a hung rig in CI once left a
 * console test's typing untouched). Guests in the rig also triple-fault now and then (seen in boot
 * tests and in snapshot tests, at different places in the guest, with nothing in common but the
 * rig): a command whose output reports a guest's triple fault runs once more too, saying so. Any
 * other failure or timeout in a healthy rig is not retried.
 */
public final class SharedRig implements RealKvm, AutoCloseable {
    /** How Panamax reports a guest's triple fault; no test makes one in the rig on purpose. */
    private static final String NESTED_TRIPLE_FAULT = "triple fault: KVM_EXIT_SHUTDOWN";
    /** How often a command runs again after rigs stopped under it: a CI rehearsal saw one stop twice in a row. */
    static final int RUNS_AGAIN_AFTER_STOPS = 2;

    private final Rig.Options options;
    private Rig rig; // guarded by this

    /** Rigs started with {@code options}, the first when a command needs one. */
    public SharedRig(Rig.Options options) {
        this.options = options;
    }

    /** The options each rig starts with. */
    public Rig.Options options() {
        return options;
    }

    /** The rig itself, started if there is none running. */
    public synchronized Rig rig() {
        if (rig != null && rig.isStopped()) {
            rig.close();
            rig = null;
        }
        if (rig == null) rig = Rig.start(options);
        return rig;
    }

    /** The rig if one is running, without starting one. */
    public synchronized Optional<Rig> running() {
        return Optional.ofNullable(rig).filter(r -> !r.isStopped());
    }

    private RunResult once(List<String> argv, InputStream input, BiFunction<Rig, InputStream, RunResult> command) {
        UntakenInput untaken = input == null ? null : new UntakenInput(input);
        RunResult result = inARig(argv, untaken, command);
        if (untaken == null && result.output().contains(NESTED_TRIPLE_FAULT)) {
            System.err.println("panamax tests: a guest triple-faulted in the rig (nested SVM under QEMU's software CPU does"
                    + " this now and then); running " + argv.getFirst() + " once more");
            return inARig(argv, untaken, command);
        }
        return result;
    }

    private RunResult inARig(List<String> argv, UntakenInput input, BiFunction<Rig, InputStream, RunResult> command) {
        for (int stops = 0; ; stops++) {
            try {
                return command.apply(rig(), input);
            } catch (RigStoppedException e) {
                if (stops == RUNS_AGAIN_AFTER_STOPS) throw e;
                if (input != null && !input.untouched()) throw e; // its input is spent: it cannot run again as it was
                // The whole message: a wedge's carries the rig's console and where QEMU's vCPUs were.
                System.err.println("panamax tests: " + e.getMessage() + "\npanamax tests: running " + argv.getFirst()
                        + " once more in a fresh rig");
                close();
            }
        }
    }

    @Override
    public RunResult run(List<String> argv, Duration timeout, OutputStream echo, InputStream input) {
        return once(argv, input, (r, in) -> r.run(argv, timeout, echo, in));
    }

    @Override
    public RunResult runJava(String mainClass, List<String> args, Duration timeout, OutputStream echo, InputStream input) {
        return once(List.of(mainClass), input, (r, in) -> r.runJava(mainClass, args, timeout, echo, in));
    }

    @Override
    public List<String> jvmOptions() {
        return rig().jvmOptions();
    }

    @Override
    public List<String> javaCommand(String mainClass, List<String> args) {
        return rig().javaCommand(mainClass, args);
    }

    /** Stops the running rig, if any; the next command starts another. */
    @Override
    public synchronized void close() {
        if (rig != null) rig.close();
        rig = null;
    }

    /**
     * A command's input that tells whether the command took any of it: a rig that stopped before a
     * byte was taken (and with no read under way) leaves the input whole, so the command can run
     * again in a fresh rig with it, as one without input does.
     */
    private static final class UntakenInput extends FilterInputStream {
        private volatile boolean taken;
        private volatile boolean reading;

        UntakenInput(InputStream in) {
            super(in);
        }

        boolean untouched() {
            return !taken && !reading;
        }

        @Override
        public int read() throws IOException {
            reading = true;
            try {
                int b = super.read();
                taken |= b >= 0;
                return b;
            } finally {
                reading = false;
            }
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            reading = true;
            try {
                int n = super.read(b, off, len);
                taken |= n > 0;
                return n;
            } finally {
                reading = false;
            }
        }
    }
}
