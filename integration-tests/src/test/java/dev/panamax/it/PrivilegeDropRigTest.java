package dev.panamax.it;

import static dev.panamax.it.PanamaxBootTest.tinyGuest;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.cli.Panamax;
import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RunResult;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code run --uid 65534 --gid 65534} (issue 20): root opens {@code /dev/kvm}, a disk image only root may open and a tap
 * (CAP_NET_ADMIN), then the VMM becomes nobody; the guest boots, pings the tap's host side, writes its disk and ends in order,
 * and the host finds the bytes in the image. Runs as root where real KVM is (the rig here).
 */
@PanamaxTest
@Timeout(900) // the first run builds the kernel (5-10 minutes on 2 cores)
class PrivilegeDropRigTest {
    private static final String PATTERN = "panamax-unprivileged-5c1e";
    private Path dir;

    @BeforeEach
    void makeDirectory() throws IOException {
        // In the module's target directory, which the rig shares writable (it is inside the work tree).
        dir = Files.createDirectories(Path.of("target", "privdrop-test-" + UUID.randomUUID()).toAbsolutePath());
    }

    @Test
    void rootOpensTheDiskAndTapThenTheGuestRunsAsNobodyAndWritesItsDisk(RealKvm kvm) throws IOException {
        assumeTrue(kvm instanceof Rig || "root".equals(System.getProperty("user.name")),
                "switching users and taps need root where the VM runs; run the test as root");
        Path disk = dir.resolve("data.raw");
        Files.write(disk, new byte[8 << 20]);
        Files.setPosixFilePermissions(disk, PosixFilePermissions.fromString("rw-------")); // nobody could not open it
        String suffix = Integer.toHexString(ThreadLocalRandom.current().nextInt(0x10000));
        String namespace = "pnx-priv-" + suffix;
        String tap = "pnxpriv" + suffix;
        String guest = "ip link set eth0 up && ip addr add 10.9.1.2/24 dev eth0 && ping -c 2 10.9.1.1 && echo ping-ok;"
                + " printf " + PATTERN + " | dd of=/dev/vda bs=4096 seek=5 conv=sync 2>/dev/null; sync; echo disk-written";
        List<String> args = new ArrayList<>(List.of("run", "--no-rig", "--timeout", "240", "--memory", "256M", "--uid", "65534",
                "--gid", "65534"));
        args.addAll(List.of(tinyGuest(GuestImages.defaultVmlinux(), "--disk", disk.toString(), "--net", "tap=" + tap)));
        args.addAll(List.of("--cmdline", "quiet panamax.run=\"" + guest + "\""));
        String script = String.join("\n",
                "trap 'ip netns del " + namespace + "' EXIT",
                "ip netns add " + namespace + " || exit 1",
                "ip -n " + namespace + " tuntap add dev " + tap + " mode tap || exit 1",
                "ip -n " + namespace + " addr add 10.9.1.1/24 dev " + tap,
                "ip -n " + namespace + " link set " + tap + " up",
                "ip netns exec " + namespace + " " + kvm.javaShellCommand(Panamax.class.getName(), args));

        RunResult r = kvm.run(List.of("sh", "-c", script), Duration.ofSeconds(300), System.out);

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).contains("panamax: running as uid 65534, gid 65534 from here on", "ping-ok", "disk-written")
                .doesNotContain("Exception", "internal error");
        assertThat(GuestImages.exitStatus(r.output())).as(r.output()).hasValue(0);
        assertThat(r.exitStatus()).as(r.output()).isZero();
        byte[] image = Files.readAllBytes(disk);
        assertThat(new String(image, 5 * 4096, PATTERN.length(), StandardCharsets.US_ASCII)).isEqualTo(PATTERN);
    }
}
