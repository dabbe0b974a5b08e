package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.Panamax;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code panamax exec} as a user runs it on this host, a process of its own: where KVM only emulates,
 * it moves into a rig of its own, and the command's stdout and stderr still come back apart (the
 * rig's channel carries one stream), with its stdin and its status.
 */
@Timeout(900)
class ExecThroughRigTest {
    @TempDir Path dir;

    @Test
    void stdoutStderrStdinAndStatusComeBackThroughTheRig() throws IOException, InterruptedException {
        List<String> argv = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), Panamax.class.getName(),
                "exec", "--", "sh", "-c", "echo to-stderr >&2; tr a-z A-Z; exit 42"));
        Path input = Files.writeString(dir.resolve("in"), "from the host\n");
        Path out = dir.resolve("out");
        Set<String> before = execTemporaryDirectories(); // others' (a killed exec's) are not this one's to answer for
        Path err = dir.resolve("err");
        Process p = new ProcessBuilder(argv).redirectInput(input.toFile()).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertThat(p.waitFor(600, TimeUnit.SECONDS)).isTrue();
        String stderr = Files.readString(err, StandardCharsets.UTF_8);
        assertThat(p.exitValue()).as(stderr).isEqualTo(42);
        assertThat(Files.readString(out, StandardCharsets.UTF_8)).isEqualTo("FROM THE HOST\n");
        assertThat(stderr).contains("to-stderr\n").doesNotContain("FROM THE HOST");
        assertThat(execTemporaryDirectories()).as("exec's temporary directories").isSubsetOf(before);
    }

    private static Set<String> execTemporaryDirectories() {
        String[] names = new File(System.getProperty("java.io.tmpdir")).list((d, name) -> name.startsWith("panamax-exec-"));
        return names == null ? Set.of() : Set.of(names);
    }
}
