package dev.panamax.it;

import static dev.panamax.it.CliProcess.assertNoStackTrace;
import static dev.panamax.it.CliProcess.awaitOutput;
import static dev.panamax.it.CliProcess.command;
import static dev.panamax.it.CliProcess.ctrlRightBracketEndsIt;
import static dev.panamax.it.CliProcess.runOnATerminal;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.panamax.demo.KvmAcceleration;
import dev.panamax.rig.RigSession;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code panamax run} as a user runs it on this host, a process of its own that moves into a rig of
 * its own where KVM only emulates: ending the VM with Ctrl-] on a terminal, and the rig dying under
 * the VM, each end {@code run} at once with its documented status and no stack trace.
 */
@Timeout(900)
class RunThroughRigTest {
    /** Only guards against a hang, which is what these tests look for; not a speed expectation. */
    private static final long END_GUARD_SECONDS = 120;

    @TempDir Path dir;

    @Test
    void ctrlRightBracketOnATerminalEndsTheVmWithStatusZeroAndNoStackTrace() throws Exception {
        Path out = dir.resolve("out");
        ProcessBuilder b = new ProcessBuilder(runOnATerminal()).redirectErrorStream(true).redirectOutput(out.toFile());
        b.environment().put(RigSession.DAEMON_VARIABLE, "0"); // a rig of run's own: WarmRigTest tests the warm one
        Process p = b.start();
        ctrlRightBracketEndsIt(p, out, END_GUARD_SECONDS);
    }

    @Test
    void aRigThatDiesUnderTheVmEndsRunAtOnceWithOneLineAndStatus69() throws Exception {
        assumeFalse(KvmAcceleration.detect().hardware(), "run uses a rig only where this host's KVM only emulates");
        Path out = dir.resolve("out");
        ProcessBuilder b = new ProcessBuilder(command("run", "--cmdline", "panamax.run=\"echo guest-up; sleep 600\""))
                .redirectErrorStream(true).redirectOutput(out.toFile()).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        b.environment().put(RigSession.DAEMON_VARIABLE, "0");
        Process p = b.start();
        try {
            awaitOutput(p, out, "guest-up");
            Optional<ProcessHandle> qemu = p.descendants().filter(h -> h.info().command().orElse("").contains("qemu-system")).findFirst();
            assertThat(qemu).as("the rig's QEMU, a child of run").isPresent();
            qemu.get().destroyForcibly();
            assertThat(p.waitFor(END_GUARD_SECONDS, TimeUnit.SECONDS)).as("run ended after its rig died").isTrue();
            String text = Files.readString(out, StandardCharsets.UTF_8);
            assertThat(p.exitValue()).as(text).isEqualTo(69);
            assertThat(text).contains("panamax: the nested KVM rig failed under the VM, which ended with it: ");
            assertNoStackTrace(text);
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
    }
}
