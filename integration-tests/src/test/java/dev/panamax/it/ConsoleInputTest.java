package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.Panamax;
import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RigStoppedException;
import dev.panamax.rig.RunResult;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Keyboard input reaches commands in the rig, and through Panamax's serial console, a guest's shell. */
@PanamaxTest
@Timeout(900)
class ConsoleInputTest {

    @Test
    void aCommandInTheRigReadsItsStandardInput(Rig rig) {
        InputStream input = new ByteArrayInputStream("one\ntwo\n".getBytes(StandardCharsets.UTF_8));
        RunResult r = rig.run(List.of("sh", "-c", "read a; read b; echo got:$a+$b; read c || echo input ended"),
                Duration.ofSeconds(60), System.out, input);
        assertThat(r.timedOut()).isFalse();
        assertThat(r.output()).contains("got:one+two", "input ended");
    }

    @Test
    void typedLinesReachTheGuestShellThroughTheSerialConsole(RealKvm kvm) {
        RunResult r;
        try {
            r = typeIntoTheGuestsShell(kvm);
        } catch (RigStoppedException e) {
            // The shared rig runs a command again in a fresh rig only while its input is untouched; typing that
            // stopped halfway can only be typed again from the start, by whoever types it (a CI run's rig wedged so).
            System.err.println("ConsoleInputTest: " + e.getMessage().lines().findFirst().orElse("") + "; typing once more in a fresh rig");
            r = typeIntoTheGuestsShell(kvm);
        }
        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).contains("typed-42");
        assertThat(r.exitStatus()).as("the typed reboot ends the VM cleanly").isZero();
    }

    /** Boots the tiny guest without a command, and types two lines into its shell once it is up, as a person would. */
    private static RunResult typeIntoTheGuestsShell(RealKvm kvm) {
        CountDownLatch shellUp = new CountDownLatch(1);
        OutputStream watcher = new OutputStream() {
            private final StringBuilder seen = new StringBuilder();

            @Override
            public void write(int b) {
                System.out.write(b);
                seen.append((char) b);
                if (seen.indexOf("starting a shell") >= 0) {
                    shellUp.countDown();
                    seen.setLength(0);
                }
                if (seen.length() > 4096) {
                    seen.delete(0, 2048);
                }
            }
        };
        InputStream typing = new InputStream() {
            private final byte[] keys = "echo typed-$((6*7))\nreboot -f\n".getBytes(StandardCharsets.UTF_8);
            private int next;

            @Override
            public int read() {
                try {
                    if (next == 0 && !shellUp.await(240, TimeUnit.SECONDS)) {
                        return -1;
                    }
                } catch (InterruptedException e) {
                    return -1;
                }
                return next < keys.length ? keys[next++] : -1;
            }

            @Override
            public int read(byte[] b, int off, int len) {
                int c = read();
                if (c < 0) {
                    return -1;
                }
                b[off] = (byte) c;
                return 1;
            }
        };
        List<String> args = new java.util.ArrayList<>(List.of("run", "--no-rig", "--timeout", "180", "--cmdline", "quiet"));
        args.addAll(List.of(PanamaxBootTest.tinyGuest(GuestImages.defaultVmlinux())));
        return kvm.runJava(Panamax.class.getName(), args, Duration.ofSeconds(240), watcher, typing);
    }
}
