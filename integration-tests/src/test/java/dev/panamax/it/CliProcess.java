package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.Panamax;
import dev.panamax.guest.GuestImages;
import dev.panamax.rig.RealKvm;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Panamax's command line as a process of its own, as a user starts it on this host, and what tests look for in its output. */
final class CliProcess {
    private CliProcess() {}

    /** The command that runs {@code panamax ARGS...} on this JDK and class path. */
    static List<String> command(String... args) {
        List<String> argv = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), Panamax.class.getName()));
        argv.addAll(List.of(args));
        return argv;
    }

    /** Waits until {@code out} shows {@code text}; fails with the output when the process ends first or after 600 s. */
    static void awaitOutput(Process p, Path out, String text) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(600);
        while (!Files.readString(out, StandardCharsets.UTF_8).contains(text)) {
            assertThat(p.isAlive()).as("the command is still running, waiting for '%s'; its output:%n%s", text,
                    Files.readString(out, StandardCharsets.UTF_8)).isTrue();
            assertThat(System.nanoTime()).as("'%s' within 600 s", text).isLessThan(deadline);
            Thread.sleep(200);
        }
    }

    /** {@code panamax run} under script(1), which gives it a terminal (a pty) and passes what is written to it as keys. */
    static List<String> runOnATerminal() {
        return List.of("script", "-qec", String.join(" ", command("run").stream().map(RealKvm::shellQuote).toList()), "/dev/null");
    }

    /**
     * Types Ctrl-] into {@link #runOnATerminal}'s process once its guest is up, and checks that run then ends within
     * {@code guardSeconds} with status 0 and no stack trace; the process and its children are killed in any case.
     */
    static void ctrlRightBracketEndsIt(Process p, Path out, long guardSeconds) throws IOException, InterruptedException {
        try {
            awaitOutput(p, out, GuestImages.INIT_MARKER);
            Thread.sleep(2000); // the guest's shell starts reading its terminal
            OutputStream keys = p.getOutputStream();
            keys.write(0x1d); // Ctrl-]
            keys.flush();
            assertThat(p.waitFor(guardSeconds, TimeUnit.SECONDS)).as("run ended after Ctrl-]").isTrue();
            String text = Files.readString(out, StandardCharsets.UTF_8);
            assertThat(p.exitValue()).as(text).isZero();
            assertNoStackTrace(text);
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
    }

    /** Output a user should see when a command ends on purpose or fails cleanly: no stack trace, no internal error. */
    static void assertNoStackTrace(String text) {
        assertThat(text).doesNotContain("internal error", "RigStoppedException", "AsynchronousCloseException")
                .doesNotContainPattern("(?m)^\\s+at [\\w.$]+\\(");
    }
}
