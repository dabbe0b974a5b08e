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

    /** The shell function {@code name} of init.sh, from its {@code name() {} line to its closing brace. */
    private static String function(String name) {
        String init = Resources.text(GuestInitramfs.class, "init.sh");
        int from = init.indexOf("\n" + name + "() {\n");
        assertThat(from).as("init.sh defines %s", name).isNotNegative();
        return init.substring(from + 1, init.indexOf("\n}\n", from) + 3);
    }

    private String param(String cmdline, String name) throws IOException {
        Path file = tmp.resolve("cmdline");
        Files.writeString(file, cmdline + "\n");
        String function = function("kernel_param").replace("/proc/cmdline", "'" + file + "'");
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

    /**
     * Runs init.sh's mount_shares on {@code value} with mkdir and mount replaced by functions that log
     * their arguments (a mount at a directory under /fail fails as busybox's does); returns the log,
     * then "--", then what the script printed (and IFS, and whether it left globbing off, afterwards).
     */
    private String mountShares(String value) throws IOException {
        Path log = tmp.resolve("calls");
        Files.deleteIfExists(log);
        Files.createFile(log);
        String stubs = "mkdir() { echo mkdir \"$@\" >> '" + log + "'; }\n"
                + "mount() { echo mount \"$@\" >> '" + log + "'; case $4 in /fail*) echo \"mount: mounting $3 on $4 failed: No such device\" >&2; return 1 ;; esac; }\n";
        String out = HostCommand.output(null, List.of(Busybox.ensure().toString(), "sh", "-c",
                stubs + function("share_is_valid") + function("mount_shares") + "mount_shares \"$1\"; echo \"ifs=[$IFS]\"; case $- in *f*) echo noglob left on ;; esac",
                "sh", value));
        return Files.readString(log) + "--\n" + out;
    }

    @Test
    void mountsEachShareAsVirtiofsAndReportsTheOneThatFails() throws IOException {
        assertThat(mountShares("host.0:/mnt/a,b-1:/fail/b,C_2:/srv")).isEqualTo("""
                mkdir -p /mnt/a
                mount -t virtiofs host.0 /mnt/a
                mkdir -p /fail/b
                mount -t virtiofs b-1 /fail/b
                mkdir -p /srv
                mount -t virtiofs C_2 /srv
                --
                panamax: cannot mount share b-1 at /fail/b: No such device
                ifs=[ \t
                ]
                """);
    }

    @Test
    void refusesMalformedSharesOneLineEachAndMountsTheRest() throws IOException {
        String tooLongTag = "t".repeat(37);
        for (String bad : List.of("notag", ":/m", "t:", "t:relative", "t:/", "t://", "t:/m/../etc", "t:/m/./x", "t:/m n",
                "t t:/m", "t*:/m", "t:/m;reboot", "t:/m/$(reboot)", "t:/m:x", "t:/m\\x", tooLongTag + ":/m")) {
            assertThat(mountShares(bad + ",ok:/mnt/ok")).as(bad).isEqualTo("""
                    mkdir -p /mnt/ok
                    mount -t virtiofs ok /mnt/ok
                    --
                    panamax: cannot mount share '%s': not TAG:DIR with the characters /init's header allows
                    ifs=[ \t
                    ]
                    """.formatted(bad));
        }
        assertThat(mountShares("t".repeat(36) + ":/m/..x")).startsWith("mkdir -p /m/..x\nmount -t virtiofs " + "t".repeat(36));
    }

    @Test
    void anEmptyListMountsNothing() throws IOException {
        assertThat(mountShares("")).isEqualTo("--\nifs=[ \t\n]\n");
    }
}
