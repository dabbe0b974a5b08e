package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Against this machine's real apt and dpkg. */
class DebianPackagesTest {
    private static final String UNKNOWN = "panamax-no-such-package";

    @Test
    void knowsWhatIsInstalled() {
        DebianPackages.ensureInstalled("busybox-static"); // the initramfs needs it anyway
        assertThat(DebianPackages.installedVersion("busybox-static")).isNotBlank();
        assertThat(DebianPackages.installedVersion(UNKNOWN)).isNull();
        // what dpkg-query, which it replaced, says
        assertThat(DebianPackages.installedVersion("busybox-static")).isEqualTo(
                HostCommand.output(null, List.of("dpkg-query", "-W", "-f=${Version}", "busybox-static")).strip());
    }

    @Test
    void readsTheStatusFileAsDpkgQueryDoes() {
        String status = """
                Package: tool
                Status: install ok installed
                Version: 1.0-1

                Package: tool-extra
                Status: install ok installed
                Version: 9

                Package: removed
                Status: deinstall ok config-files
                Version: 2.0

                Package: lib
                Status: install ok installed
                Multi-Arch: same
                Architecture: amd64
                Version: 3:1.2
                Description: a library
                 whose description goes on

                Package: lib
                Status: install ok installed
                Architecture: i386
                Version: 3:1.2

                Package: last
                Version: 4
                Status: install ok installed""";
        assertThat(DebianPackages.installedVersion(status, "tool")).isEqualTo("1.0-1");
        assertThat(DebianPackages.installedVersion(status, "tool-extra")).isEqualTo("9");
        assertThat(DebianPackages.installedVersion(status, "removed")).isNull();
        assertThat(DebianPackages.installedVersion(status, "lib")).isEqualTo("3:1.2");
        assertThat(DebianPackages.installedVersion(status, "last")).as("Version before Status, no blank line at the end").isEqualTo("4");
        assertThat(DebianPackages.installedVersion(status, "too")).isNull();
        assertThat(DebianPackages.installedVersion(status, "extra")).isNull();
    }

    @Test
    void unpacksAPackageWithoutInstallingIt() {
        // linux-source-6.1 is what the kernel build unpacks; it is cached once fetched.
        String installedBefore = DebianPackages.installedVersion("linux-source-6.1");
        assertThat(DebianPackages.unpacked("linux-source-6.1").resolve("usr/src/linux-source-6.1.tar.xz")).satisfies(
                p -> assertThat(Files.size(p)).isGreaterThan(100_000_000));
        assertThat(DebianPackages.installedVersion("linux-source-6.1")).isEqualTo(installedBefore);
    }

    @Test
    void aPackageThatCannotBeHadIsOneSentenceWithTheCommandToRun() {
        assertThatThrownBy(() -> DebianPackages.ensureInstalled(UNKNOWN)).isInstanceOf(MissingIngredientException.class)
                .hasMessageContaining(UNKNOWN).hasMessageEndingWith("install them with `apt-get install " + UNKNOWN + "`.");
        assertThatThrownBy(() -> DebianPackages.unpacked(UNKNOWN)).isInstanceOf(MissingIngredientException.class)
                .hasMessageContaining("apt-get download " + UNKNOWN);
    }
}
