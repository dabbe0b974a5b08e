package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A rig that stops answering while a command runs is taken for wedged long before the command's
 * timeout, and the test run's rig runs the command again in a fresh one, also when that one wedges
 * too; a healthy rig running a silent command is left alone. The wedge is made by stopping QEMU
 * (SIGSTOP), which silences the rig as QEMU's software CPU did when it hung. A boot that takes too
 * long is tried once more.
 */
@Timeout(600)
class WedgedRigTest {
    /** A third of the rigs' own 30 s: the test waits it out four times; a healthy rig answers its pings within seconds. */
    private static final Duration WEDGED_AFTER = Duration.ofSeconds(10);

    @Test
    void aSilentCommandRunsOnAndAWedgedRigIsReplacedAndTheCommandRunAgain(@TempDir Path dir) throws Exception {
        Path marker = dir.resolve("first-run-done");
        Path second = dir.resolve("second-run-done");
        // The first run: silent for twice WEDGED_AFTER in a healthy rig, then it asks to be wedged. The second, in
        // a fresh rig, asks to be wedged at once. The third, in a fresh rig again, finds both markers and ends.
        String script = "[ -e " + marker + " ] || { sleep " + 2 * WEDGED_AFTER.toSeconds() + "; touch " + marker
                + "; echo wedge-me; sleep 600; }; [ -e " + second + " ] || { touch " + second + "; echo wedge-me; sleep 600; };"
                + " echo ran-again";
        SharedRig shared = new SharedRig(Rig.Options.defaults().withShare(dir, false).withWedgedAfter(WEDGED_AFTER));
        try {
            long firstQemu = shared.rig().qemuPid();
            // What a wedge's message reports of QEMU's vCPUs, here of a healthy rig.
            assertThat(shared.rig().vcpuStates()).contains("CPU#0", "CPU#1", "RIP=", "CR0=", "EFER=").doesNotContain("did not answer");
            AtomicInteger wedged = new AtomicInteger();
            ByteArrayOutputStream seen = new ByteArrayOutputStream();
            OutputStream echo = new OutputStream() {
                @Override
                public synchronized void write(int b) throws IOException {
                    seen.write(b);
                    String text = seen.toString(StandardCharsets.UTF_8);
                    if (text.split("wedge-me", -1).length - 1 > wedged.get()) {
                        wedged.incrementAndGet();
                        shared.running().ifPresent(r -> stop(r.qemuPid()));
                    }
                }
            };

            RunResult result = shared.run(List.of("sh", "-c", script), Duration.ofMinutes(8), echo, null);

            assertThat(Files.exists(second)).as("the second run started").isTrue();
            assertThat(wedged).as("rigs stopped").hasValue(SharedRig.RUNS_AGAIN_AFTER_STOPS);
            assertThat(result.exitStatus()).isZero();
            assertThat(result.timedOut()).isFalse();
            assertThat(result.output()).contains("ran-again");
            assertThat(shared.rig().qemuPid()).as("a fresh rig").isNotEqualTo(firstQemu);
            assertThat(ProcessHandle.of(firstQemu).map(ProcessHandle::isAlive)).as("the wedged rig's QEMU").isNotEqualTo(java.util.Optional.of(true));
        } finally {
            shared.close();
        }
    }

    /** A boot that reaches no agent in time (here: 2 s, where it takes 10 or more) is reported with the vCPUs and tried once more. */
    @Test
    void aBootThatTakesTooLongIsReportedAndTriedOnceMore() {
        Rig.Options d = Rig.Options.defaults();
        Rig.Options impatient = new Rig.Options(d.workingDirectory(), d.shares(), d.memoryMib(), d.cpus(), Duration.ofSeconds(2),
                d.showConsole(), d.oneTcgThread(), d.wedgedAfter(), d.jvmTraining());
        java.io.PrintStream err = System.err;
        ByteArrayOutputStream said = new ByteArrayOutputStream();
        System.setErr(new java.io.PrintStream(said, true, StandardCharsets.UTF_8));
        Throwable thrown;
        try {
            thrown = org.assertj.core.api.Assertions.catchThrowable(() -> Rig.start(impatient).close());
        } finally {
            System.setErr(err);
        }
        String progress = said.toString(StandardCharsets.UTF_8);
        err.print(progress);

        assertThat(thrown).isInstanceOf(Rig.BootWedgedException.class)
                .hasMessageContaining("did not boot to its agent within 2 s, so it was taken for wedged")
                .hasMessageContaining("CPU#0").hasMessageContaining("RIP=");
        assertThat(progress.split("starting the nested KVM rig", -1)).as("boots tried").hasSize(3);
        assertThat(progress).contains("starting the rig once more");
    }

    private static void stop(long pid) {
        try {
            new ProcessBuilder("kill", "-STOP", String.valueOf(pid)).inheritIO().start().waitFor();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
