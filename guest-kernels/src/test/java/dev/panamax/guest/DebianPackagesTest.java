package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import org.junit.jupiter.api.Test;

/** Against this machine's real apt and dpkg. */
class DebianPackagesTest {
    private static final String UNKNOWN = "panamax-no-such-package";

    @Test
    void knowsWhatIsInstalled() {
        DebianPackages.ensureInstalled("busybox-static"); // the initramfs needs it anyway
        assertThat(DebianPackages.installedVersion("busybox-static")).isNotBlank();
        assertThat(DebianPackages.installedVersion(UNKNOWN)).isNull();
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
