package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The guest /init's reading of kernel parameters, run with the same busybox on a command line from a file. */
class InitScriptTest {
    @TempDir Path tmp;

    private String param(String cmdline, String name) throws IOException {
        String init = Resources.text(GuestInitramfs.class, "init.sh");
        int from = init.indexOf("kernel_param() {");
        int to = init.indexOf("\n}\n", from) + 3;
        Path file = tmp.resolve("cmdline");
        Files.writeString(file, cmdline + "\n");
        String function = init.substring(from, to).replace("/proc/cmdline", "'" + file + "'");
        String out = HostCommand.output(null, List.of(Busybox.ensure().toString(), "sh", "-c",
                function + "kernel_param " + name + " || echo ABSENT"));
        return out.substring(0, out.length() - 1);
    }

    @Test
    void readsAPlainValue() throws IOException {
        assertThat(param("console=ttyS0 panamax.exit=poweroff quiet", "panamax.exit")).isEqualTo("poweroff");
    }

    @Test
    void readsADoubleQuotedValueWithSpacesAndShellCharacters() throws IOException {
        assertThat(param("console=ttyS0 panamax.run=\"echo 'a  b'; exit 3\" panic=-1", "panamax.run"))
                .isEqualTo("echo 'a  b'; exit 3");
    }

    @Test
    void readsAValueWhoseWholeParameterIsQuoted() throws IOException {
        assertThat(param("\"panamax.run=ls /proc\" x=1", "panamax.run")).isEqualTo("ls /proc");
    }

    @Test
    void tellsAnAbsentParameterFromAnEmptyOne() throws IOException {
        assertThat(param("panamax.runner=1 apanamax.run=2", "panamax.run")).isEqualTo("ABSENT");
        assertThat(param("panamax.run=", "panamax.run")).isEmpty();
    }
}
