package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.Panamax;
import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RunResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code panamax exec} where real KVM is (the class's one rig here, shared by every case): each case
 * runs the CLI's {@code exec --no-rig} there with its stdout and stderr in files of their own, then
 * looks for what it left behind. {@link ExecThroughRigTest} runs {@code exec} from this host, through a rig of its own.
 */
@PanamaxTest
@Timeout(1500)
class ExecRigTest {
    private static final Duration RUN_TIMEOUT = Duration.ofSeconds(400);

    /** One exec: its status and streams, and how many exec processes and temporary directories were left after it. */
    record Exec(int status, String stdout, String stderr, int leftoverProcesses, int leftoverDirectories, String all) {}

    private static final Pattern RESULT = Pattern.compile(
            "exec-status=(\\d+)\nleftover-processes=(\\d+)\nleftover-dirs=(\\d+)\n==stdout\n(.*)==stderr\n(.*)==end\n", Pattern.DOTALL);

    /** Runs {@code panamax exec --no-rig ARGS} there, with {@code input} (null: nothing) as its stdin. */
    static Exec exec(RealKvm kvm, String input, String... args) {
        return execIn(kvm, null, input, args);
    }

    /** {@link #exec} from the rig's directory {@code dir} (null: wherever the rig's commands start), after {@code setUp} (null: none) there. */
    static Exec execIn(RealKvm kvm, String setUp, String input, String... args) {
        // The kernel and initramfs as this host's cache has them (the rig has no dpkg database to key its cache with).
        List<String> argv = new ArrayList<>(List.of("exec", "--no-rig", "--kernel", GuestImages.defaultVmlinux().toString(),
                "--initrd", GuestImages.defaultInitramfs().toString()));
        argv.addAll(List.of(args));
        String java = kvm.javaShellCommand(Panamax.class.getName(), argv);
        String script = String.join("\n",
                setUp == null ? "" : setUp,
                "d=$(mktemp -d)",
                (input == null ? "" : "printf %s " + RealKvm.shellQuote(input) + " | ") + java + " > $d/out 2> $d/err" + (input == null ? " < /dev/null" : ""),
                "echo exec-status=$?",
                // (The pattern's brackets keep grep from finding itself; this script's own text quotes each word.)
                "echo leftover-processes=$(ps -eo args | grep -c '[e]xec --no-rig')",
                "echo leftover-dirs=$(ls -d /tmp/panamax-exec-* 2>/dev/null | wc -l)",
                "echo ==stdout; cat $d/out; echo ==stderr; cat $d/err; echo ==end; rm -rf $d");
        RunResult r = kvm.run(List.of("sh", "-c", script), RUN_TIMEOUT, System.out);
        assertThat(r.timedOut()).as(r.output()).isFalse();
        Matcher m = RESULT.matcher(r.output());
        assertThat(m.find()).as(r.output()).isTrue();
        return new Exec(Integer.parseInt(m.group(1)), m.group(4), m.group(5), Integer.parseInt(m.group(2)),
                Integer.parseInt(m.group(3)), r.output());
    }

    @Test
    void theCommandsExitStatusComesBackFaithfully(RealKvm kvm) {
        Exec ok = exec(kvm, null, "--", "true");
        assertThat(ok.status()).as(ok.all()).isZero();
        assertThat(ok.stdout()).isEmpty();
        Exec one = exec(kvm, null, "--", "false");
        assertThat(one.status()).as(one.all()).isEqualTo(1);
        Exec answer = exec(kvm, null, "--", "sh", "-c", "exit 42");
        assertThat(answer.status()).as(answer.all()).isEqualTo(42);
        assertThat(answer.leftoverProcesses()).isZero();
        assertThat(answer.leftoverDirectories()).isZero();
    }

    @Test
    void stdoutAndStderrStayApartAndArgumentsArriveWhole(RealKvm kvm) {
        Exec r = exec(kvm, null, "--", "sh", "-c", "printf '[%s]\\n' \"$@\"; echo to-stderr >&2; echo more-stdout", "sh",
                "two words", "\"quoted\"", "it's");
        assertThat(r.status()).as(r.all()).isZero();
        assertThat(r.stdout()).isEqualTo("[two words]\n[\"quoted\"]\n[it's]\nmore-stdout\n");
        assertThat(r.stderr()).contains("to-stderr\n").doesNotContain("more-stdout", "[two words]");
    }

    @Test
    void aCommandOutlivingItsTimeoutEndsWith124AndLeavesNothingBehind(RealKvm kvm) {
        Exec early = exec(kvm, null, "--timeout", "1s", "--", "sleep", "2");
        assertThat(early.status()).as(early.all()).isEqualTo(124);
        assertThat(early.stderr()).contains("killed the VM").as("where the guest stood").contains("panamax:   vcpu 0: ");
        assertThat(early.leftoverProcesses()).as(early.all()).isZero();
        assertThat(early.leftoverDirectories()).as(early.all()).isZero();
        // The same once the command runs: what it wrote before the kill came through.
        Exec late = exec(kvm, null, "--timeout", "30s", "--", "sh", "-c", "echo started; sleep 600");
        assertThat(late.status()).as(late.all()).isEqualTo(124);
        assertThat(late.stdout()).isEqualTo("started\n");
        assertThat(late.leftoverProcesses()).as(late.all()).isZero();
        assertThat(late.leftoverDirectories()).as(late.all()).isZero();
    }

    @Test
    void aKernelPanicHasItsOwnStatusAndItsTextOnStderr(RealKvm kvm) {
        Exec r = exec(kvm, null, "--", "sh", "-c", "echo c > /proc/sysrq-trigger");
        assertThat(r.status()).as(r.all()).isEqualTo(123);
        assertThat(r.stderr()).contains("the guest kernel crashed", "Kernel panic - not syncing", "sysrq");
        assertThat(r.stdout()).isEmpty();
    }

    @Test
    void stdinIsForwarded(RealKvm kvm) {
        Exec r = exec(kvm, "hi\nthere\n", "--", "cat");
        assertThat(r.status()).as(r.all()).isZero();
        assertThat(r.stdout()).isEqualTo("hi\nthere\n");
    }

    /**
     * --rootfs host: the command sees the rig's root directory (the host, for the exec there), in the
     * directory exec ran from, with a share mounted inside it; its writes stay in the guest.
     */
    @Test
    void withRootfsHostTheCommandRunsInTheHostsRootFromTheSameDirectoryAndItsWritesStayInTheGuest(RealKvm kvm) {
        String setUp = "mkdir -p /var/tmp/rootfs-share && echo shared-file > /var/tmp/rootfs-share/hello && cd /usr/share";
        Exec r = execIn(kvm, setUp, null, "--rootfs", "host", "--share", "/var/tmp/rootfs-share,tag=s", "--", "sh", "-c",
                "pwd; head -n 1 /etc/os-release; cat /mnt/s/hello; echo guest-write > /etc/panamax-rootfs-test && cat /etc/panamax-rootfs-test");
        assertThat(r.status()).as(r.all()).isZero();
        RunResult host = kvm.run(List.of("sh", "-c", "head -n 1 /etc/os-release; test -e /etc/panamax-rootfs-test && echo the-write-reached-the-host"),
                RUN_TIMEOUT, System.out);
        String osRelease = host.output().lines().findFirst().orElseThrow();
        assertThat(osRelease).as("the rig's /etc/os-release").isNotBlank();
        assertThat(r.stdout()).isEqualTo("/usr/share\n" + osRelease + "\nshared-file\nguest-write\n");
        assertThat(host.output()).doesNotContain("the-write-reached-the-host");
        assertThat(r.leftoverProcesses()).isZero();
    }
}
