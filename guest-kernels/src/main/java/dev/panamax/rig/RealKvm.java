package dev.panamax.rig;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A place where {@code /dev/kvm} is hardware-accelerated KVM, so that Linux guests boot: this host
 * when its KVM runs guest code at hardware speed ({@link HostKvm}), otherwise the nested {@link Rig}. Commands run
 * with the caller's working directory and JDK.
 */
public interface RealKvm {

    /**
     * Runs {@code argv} there, copying its output to {@code echo} as it comes, and kills it (with
     * everything it started) once it outlives {@code timeout}.
     */
    default RunResult run(List<String> argv, Duration timeout, OutputStream echo) {
        return run(argv, timeout, echo, null);
    }

    /** The same, with {@code input} (read on a thread of its own until it ends) as the command's stdin; null for none. */
    RunResult run(List<String> argv, Duration timeout, OutputStream echo, InputStream input);

    default RunResult run(List<String> argv, Duration timeout) {
        return run(argv, timeout, OutputStream.nullOutputStream());
    }

    /**
     * Runs {@code mainClass} in a fresh JVM of the running JDK with the running class path (a test
     * class path included), native access granted as Panamax needs it.
     */
    default RunResult runJava(String mainClass, List<String> args, Duration timeout, OutputStream echo) {
        return runJava(mainClass, args, timeout, echo, null);
    }

    /** The same, with {@code input} as the JVM's stdin; null for none. */
    default RunResult runJava(String mainClass, List<String> args, Duration timeout, OutputStream echo, InputStream input) {
        return run(javaCommand(mainClass, args), timeout, echo, input);
    }

    /** The command {@link #runJava} runs, for a script that runs it among other commands. */
    default List<String> javaCommand(String mainClass, List<String> args) {
        return javaCommand(jvmOptions(), System.getProperty("java.class.path"), mainClass, args);
    }

    /** The running JDK's {@code java} with {@code jvmOptions}, native access granted, {@code classPath}, {@code mainClass} and {@code args}. */
    static List<String> javaCommand(List<String> jvmOptions, String classPath, String mainClass, List<String> args) {
        List<String> argv = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        argv.addAll(jvmOptions);
        argv.addAll(List.of("--enable-native-access=ALL-UNNAMED", "-cp", classPath, mainClass));
        argv.addAll(args);
        return argv;
    }

    /** {@link #javaCommand} as one line of {@code sh}, each word quoted, for a script that runs it among other commands. */
    default String javaShellCommand(String mainClass, List<String> args) {
        return String.join(" ", javaCommand(mainClass, args).stream().map(RealKvm::shellQuote).toList());
    }

    /** {@code word} single-quoted for {@code sh}: it stays one word, with nothing in it expanded. */
    static String shellQuote(String word) {
        return "'" + word.replace("'", "'\\''") + "'";
    }

    /** Options every JVM started here needs, beyond native access. */
    default List<String> jvmOptions() {
        return List.of();
    }
}
