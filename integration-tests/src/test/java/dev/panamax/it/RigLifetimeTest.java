package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.rig.Rig;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The rig never outlives the JVM that started it, even one killed with SIGKILL. */
@Timeout(300)
class RigLifetimeTest {

    @Test
    void qemuDiesWithAJvmKilledBySigkillAndTheNextRigCleansUpAfterIt() throws Exception {
        Process child = new ProcessBuilder(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), RigHolder.class.getName()))
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        ProcessHandle qemu = null;
        try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = out.readLine()) != null; ) {
                if (line.startsWith("qemu-pid ")) {
                    qemu = ProcessHandle.of(Long.parseLong(line.substring("qemu-pid ".length()))).orElseThrow();
                    break;
                }
            }
            assertThat(qemu).as("the child JVM started a rig").isNotNull();
            assertThat(qemu.isAlive()).isTrue();
            assertThat(qemu.info().command()).hasValueSatisfying(c -> assertThat(c).endsWith("qemu-system-x86_64"));
            Path scratch = scratchOf(qemu);

            child.destroyForcibly(); // SIGKILL: no shutdown hook runs
            assertThat(child.waitFor(30, TimeUnit.SECONDS)).isTrue();
            assertThat(qemu.onExit().completeOnTimeout(null, 10, TimeUnit.SECONDS).get()).as("QEMU exited").isNotNull();
            assertThat(qemu.isAlive()).isFalse();

            assertThat(scratch).as("the killed JVM could not delete its scratch directory").exists();
            try (Rig _ = Rig.start()) {
                assertThat(scratch).as("the next rig start deleted it").doesNotExist();
            }
        } finally {
            child.destroyForcibly();
            Optional.ofNullable(qemu).ifPresent(ProcessHandle::destroyForcibly);
        }
    }

    /** The rig's scratch directory, where QEMU's control socket lives. */
    private static Path scratchOf(ProcessHandle qemu) {
        String chardev = qemu.info().arguments().stream().flatMap(Arrays::stream).filter(a -> a.contains("control.sock"))
                .findFirst().orElseThrow();
        return Path.of(chardev.replaceAll(".*path=([^,]*)/control\\.sock.*", "$1"));
    }
}
