package dev.panamax.cli;

import static dev.panamax.cli.CliRun.panamax;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.boot.SyntheticKernels;
import dev.panamax.guest.KernelConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax kernel-config}: printing the options, merging them into a .config, checking a kernel. */
class KernelConfigCommandTest {
    @TempDir Path dir;

    @Test
    void withoutArgumentsItPrintsEveryOptionWithItsReason() {
        CliRun r = panamax("kernel-config");
        assertThat(r.status()).isZero();
        assertThat(r.out()).contains("# exec's channel to the guest is a vsock\nCONFIG_VIRTIO_VSOCKETS=y\n").contains("CONFIG_VIRTIO_FS=y\n");
        assertThat(KernelConfig.parse(r.out(), "out").unmet(KernelConfigCommand.ALL)).isEmpty();
    }

    @Test
    void aConfigIsMergedInPlaceSayingWhatChangedAndAgainChangesNothing() throws Exception {
        Path config = Files.writeString(dir.resolve(".config"), "CONFIG_PCI=y\nCONFIG_VIRTIO_PCI=m\n# CONFIG_VIRTIO_FS is not set\n");
        CliRun first = panamax("kernel-config", config.toString());
        assertThat(first.status()).as(first.err()).isZero();
        assertThat(first.err()).contains("was CONFIG_VIRTIO_PCI is a module (m)").contains("set " + (KernelConfigCommand.ALL.size() - 1)
                + " options to y").contains("make olddefconfig");
        assertThat(Files.readString(config)).startsWith("CONFIG_PCI=y\nCONFIG_VIRTIO_PCI=y\nCONFIG_VIRTIO_FS=y\n");
        CliRun second = panamax("kernel-config", config.toString());
        assertThat(second.err()).contains("already has every option");
        assertThat(panamax("kernel-config", dir.resolve("none").toString()).status()).isEqualTo(Panamax.EXIT_USAGE);
    }

    @Test
    void checkNamesWhatAKernelLacksOrSaysItCannotKnow() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        CliRun unknown = panamax("kernel-config", "--check", kernel.toString());
        assertThat(unknown.status()).isEqualTo(Panamax.EXIT_USAGE);
        assertThat(unknown.err()).contains("cannot check").contains("CONFIG_IKCONFIG");
        Files.writeString(dir.resolve("config"), "CONFIG_PCI=y\n");
        CliRun lacking = panamax("kernel-config", "--check", kernel.toString());
        assertThat(lacking.status()).isEqualTo(1);
        assertThat(lacking.out()).contains("CONFIG_VIRTIO_VSOCKETS is not set").doesNotContain("CONFIG_PCI ");
        assertThat(lacking.err()).contains((KernelConfigCommand.ALL.size() - 1) + " options missing, from " + dir.resolve("config"));
    }
}
