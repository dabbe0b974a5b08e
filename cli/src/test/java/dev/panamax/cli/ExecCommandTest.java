package dev.panamax.cli;

import static dev.panamax.cli.CliRun.panamax;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.boot.SyntheticKernels;
import dev.panamax.cli.common.UserError;
import dev.panamax.guest.KernelConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax exec}'s options and exit statuses, without a guest. */
class ExecCommandTest {
    @TempDir Path dir;

    private void assertRefused(String expected, String... args) {
        CliRun r = panamax(args);
        assertThat(r.status()).as(r.err()).isEqualTo(ExecCommand.FAILED);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).contains(expected).doesNotContain("Exception");
    }

    @Test
    void timeoutsTakeAUnit() {
        assertThat(ExecCommand.parseTimeout("60s")).isEqualTo(Duration.ofSeconds(60));
        assertThat(ExecCommand.parseTimeout("60")).isEqualTo(Duration.ofSeconds(60));
        assertThat(ExecCommand.parseTimeout("500ms")).isEqualTo(Duration.ofMillis(500));
        assertThat(ExecCommand.parseTimeout("5m")).isEqualTo(Duration.ofMinutes(5));
        assertThat(ExecCommand.parseTimeout("2h")).isEqualTo(Duration.ofHours(2));
        for (String bad : new String[] {"0s", "", "-1s", "1.5s", "10d", "s", "1 s", "9999999999s"}) {
            assertThatThrownBy(() -> ExecCommand.parseTimeout(bad)).as(bad).isInstanceOf(UserError.class).hasMessageContaining("--timeout");
        }
        assertThat(ExecCommand.parseTimeout(ExecCommand.formatTimeout(Duration.ofMillis(1500)))).isEqualTo(Duration.ofMillis(1500));
    }

    @Test
    void theStatusIsTheCommandsUnlessTheRunFailed() {
        OptionalInt none = OptionalInt.empty();
        assertThat(ExecCommand.exitStatus(false, true, OptionalInt.of(0), false, false)).isZero();
        assertThat(ExecCommand.exitStatus(false, true, OptionalInt.of(42), false, false)).isEqualTo(42);
        assertThat(ExecCommand.exitStatus(false, true, OptionalInt.of(143), true, true)).as("only a 0 becomes 122").isEqualTo(143);
        assertThat(ExecCommand.exitStatus(false, true, OptionalInt.of(0), true, false)).as("warnings alone fail nothing").isZero();
        assertThat(ExecCommand.exitStatus(false, true, OptionalInt.of(0), true, true)).isEqualTo(ExecCommand.KERNEL_WARNED);
        assertThat(ExecCommand.exitStatus(true, true, none, false, false)).isEqualTo(ExecCommand.TIMED_OUT);
        assertThat(ExecCommand.exitStatus(true, true, OptionalInt.of(0), false, false)).isEqualTo(ExecCommand.TIMED_OUT);
        assertThat(ExecCommand.exitStatus(false, false, none, false, false)).isEqualTo(ExecCommand.GUEST_CRASHED);
        assertThat(ExecCommand.exitStatus(false, false, OptionalInt.of(0), false, false)).isEqualTo(ExecCommand.GUEST_CRASHED);
        assertThat(ExecCommand.exitStatus(false, true, none, true, true)).isEqualTo(ExecCommand.FAILED);
        assertThat(new int[] {ExecCommand.KERNEL_WARNED, ExecCommand.GUEST_CRASHED, ExecCommand.TIMED_OUT, ExecCommand.FAILED})
                .as("each its own").doesNotHaveDuplicates();
    }

    @Test
    void badOptionsEndWith125BeforeAnyGuestRuns() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        Path initrd = Files.write(dir.resolve("initrd"), new byte[16]);
        String k = kernel.toString();
        String i = initrd.toString();
        assertRefused("CMD", "exec");
        assertRefused("Unknown option", "exec", "--bogus", "--", "true");
        assertRefused("--timeout 0s", "exec", "--no-rig", "--timeout", "0s", "--kernel", k, "--initrd", i, "--", "true");
        assertRefused("NUL", "exec", "--no-rig", "--kernel", k, "--initrd", i, "--", "echo", "a\0b");
        assertRefused("'12Q' is not a size", "exec", "--no-rig", "--memory", "12Q", "--kernel", k, "--initrd", i, "--", "true");
        assertRefused("--cpus: 0 vCPUs", "exec", "--no-rig", "--cpus", "0", "--kernel", k, "--initrd", i, "--", "true");
        assertRefused("does not exist", "exec", "--no-rig", "--kernel", dir.resolve("missing").toString(), "--", "true");
        assertRefused("--share", "exec", "--no-rig", "--kernel", k, "--initrd", i, "--share", dir.resolve("nope") + ",tag=a", "--", "true");
        assertRefused(dir.resolve("nope.raw") + " does not exist", "exec", "--no-rig", "--kernel", k, "--initrd", i,
                "--disk", dir.resolve("nope.raw") + ",readonly", "--", "true");
    }

    @Test
    void theExecInsideTheRigWritesItsStderrToTheFileTheOuterExecFollows() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        Path initrd = Files.write(dir.resolve("initrd"), new byte[16]);
        Path stderr = Files.writeString(dir.resolve("stderr"), "earlier\n");
        CliRun r = panamax("exec", "--stderr-file", stderr.toString(), "--no-rig", "--timeout", "0s", "--kernel", kernel.toString(),
                "--initrd", initrd.toString(), "--", "true");
        assertThat(r.status()).isEqualTo(ExecCommand.FAILED);
        assertThat(r.err()).isEmpty();
        assertThat(Files.readString(stderr)).as("appended").startsWith("earlier\n").contains("--timeout 0s");
    }

    @Test
    void aKernelWhoseConfigurationLacksAnOptionIsRefusedNamingItBeforeAnyGuestRuns() throws Exception {
        Path own = Files.createDirectory(dir.resolve("own"));
        Path kernel = SyntheticKernels.write(own, "bzImage", SyntheticKernels.bzImage());
        Path initrd = Files.write(dir.resolve("initrd"), new byte[16]);
        String lacking = KernelConfig.merge("", KernelConfig.EXEC).replace("CONFIG_VIRTIO_VSOCKETS=y", "CONFIG_VIRTIO_VSOCKETS=m");
        Files.writeString(own.resolve("config"), lacking);
        assertRefused("CONFIG_VIRTIO_VSOCKETS is a module (m), which nothing loads; it must be y", "exec", "--no-rig", "--kernel",
                kernel.toString(), "--initrd", initrd.toString(), "--", "true");
        Path share = Files.createDirectory(dir.resolve("share"));
        Files.writeString(own.resolve("config"), KernelConfig.merge("", KernelConfig.EXEC));
        assertRefused("CONFIG_VIRTIO_FS is not set", "exec", "--no-rig", "--kernel", kernel.toString(), "--initrd", initrd.toString(),
                "--rootfs", "none", "--share", share.toString(), "--", "true");
        // With --rootfs host (the default with a kernel of your own and no --initrd) the overlay is needed.
        Files.writeString(own.resolve("config"), KernelConfig.merge("", KernelConfigCommand.ALL).replace("CONFIG_OVERLAY_FS=y\n", ""));
        assertRefused("CONFIG_OVERLAY_FS is not set", "exec", "--no-rig", "--kernel", kernel.toString(), "--initrd", initrd.toString(),
                "--rootfs", "host", "--", "true");
    }

    @Test
    void rootfsIsHostOrNoneAndItsShareTagIsNotAUsers() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage()); // no configuration to check
        Path initrd = Files.write(dir.resolve("initrd"), new byte[16]);
        assertRefused("--rootfs bogus: use host or none", "exec", "--no-rig", "--kernel", kernel.toString(), "--initrd",
                initrd.toString(), "--rootfs", "bogus", "--", "true");
        Path share = Files.createDirectory(dir.resolve("mine"));
        for (String rootfs : new String[] {"host", "none"}) { // reserved either way: /init knows it by name
            assertRefused("the tag " + ExecCommand.HOST_ROOT_TAG + " is --rootfs host's", "exec", "--no-rig", "--kernel",
                    kernel.toString(), "--initrd", initrd.toString(), "--rootfs", rootfs, "--share",
                    share + ",tag=" + ExecCommand.HOST_ROOT_TAG, "--", "true");
        }
    }
}
