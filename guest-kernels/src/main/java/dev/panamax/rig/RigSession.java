package dev.panamax.rig;

import dev.panamax.guest.Progress;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A rig to run commands in for as long as the caller needs it: a private {@link Rig}, started for the
 * caller and stopped by {@link #close}, or the user's {@link WarmRig}, which outlives the caller and
 * serves the next command without a rig start.
 */
public interface RigSession extends RealKvm, AutoCloseable {
    /** The variable that turns the warm rig off ({@code 0}); it is on otherwise. */
    String DAEMON_VARIABLE = "PANAMAX_RIG_DAEMON";

    /** A directory the rig and this host share read-write, for exchanging files. */
    Path scratch();

    /**
     * Ends the command running now, as the user's Ctrl-] asks: a private rig stops; the warm rig
     * kills the command and stays up. The command's run then returns or throws {@link RigException}.
     */
    void interruptRun();

    /**
     * Runs the Java program {@code jvm}, {@code mainClass}, {@code args}. The warm rig may hand it to a
     * standby JVM started ahead as {@code jvm}, {@code standbyClass}: a program that prints
     * {@link WarmRig#STANDBY_READY} once it is ready, reads the arguments as its first line of input
     * ({@link WarmRig#decodeArgs}) and then runs {@code mainClass} with them, the rest of its input theirs.
     */
    default RunResult runProgram(List<String> jvm, String mainClass, String standbyClass, List<String> args, Duration timeout,
            OutputStream echo, InputStream input) {
        List<String> argv = new ArrayList<>(jvm);
        argv.add(mainClass);
        argv.addAll(args);
        return run(argv, timeout, echo, input);
    }

    @Override
    void close();

    /**
     * The warm rig when its daemon can serve (it starts one if none runs), else a private rig, saying
     * why; a private rig at once when {@value #DAEMON_VARIABLE} is {@code 0} or inside a rig.
     */
    static RigSession open(Rig.Options options) {
        if (!"0".equals(System.getenv(DAEMON_VARIABLE)) && System.getenv("PANAMAX_IN_RIG") == null) {
            try {
                return WarmRig.open(options);
            } catch (WarmRig.UnavailableException e) {
                Progress.say(e.getMessage() + "; starting a rig of this command's own");
            }
        }
        return Rig.start(options);
    }
}
