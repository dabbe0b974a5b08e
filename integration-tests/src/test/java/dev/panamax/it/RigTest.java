package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RunResult;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Commands in the nested KVM rig: output, exit status, environment, timeouts. One rig serves the class. */
@PanamaxTest
@Timeout(300)
class RigTest {

    @Test
    void commandOutputAndExitStatusComeBackAndItsKvmIsReal(Rig rig) {
        ByteArrayOutputStream streamed = new ByteArrayOutputStream();
        RunResult r = rig.run(List.of("sh", "-c", "echo to-stdout; echo to-stderr >&2; pwd; ls -l /dev/kvm;"
                + " grep -c -w svm /proc/cpuinfo; exit 3"), Duration.ofSeconds(60), streamed);
        assertThat(r.exitStatus()).isEqualTo(3);
        assertThat(r.timedOut()).isFalse();
        assertThat(r.output()).contains("to-stdout\n", "to-stderr\n", System.getProperty("user.dir") + "\n")
                .containsPattern("(?m)^crw.* /dev/kvm$")
                .containsPattern("(?m)^[1-9]\\d*$"); // vCPUs with the svm flag: KVM here is hardware-style
        assertThat(streamed.toString(StandardCharsets.UTF_8)).isEqualTo(r.output());
    }

    @Test
    void theRigHoldsAVmWithAVcpuForItsLifeSoThatVmsComingAndGoingPatchNoKernelCode(Rig rig) {
        // rig-init.sh says why: without it, VMs coming and going patch kernel code, and the rig may freeze (vm-churn.sh).
        RunResult r = rig.run(List.of("sh", "-c", "for p in $(pgrep -f '^panamax-rig-held-vm'); do ls -l /proc/$p/fd; done"),
                Duration.ofSeconds(60));
        assertThat(r.output()).contains("anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0");
    }

    @Test
    void argumentsArriveVerbatimAndTheEnvironmentEssentialsToo(Rig rig) {
        RunResult r = rig.run(List.of("printf", "[%s]\\n", "two words", "it's", "$HOME", "*"), Duration.ofSeconds(60));
        assertThat(r.output()).isEqualTo("[two words]\n[it's]\n[$HOME]\n[*]\n");
        RunResult env = rig.run(List.of("sh", "-c", "echo \"$JAVA_HOME|$PANAMAX_IN_RIG|$HOME\""), Duration.ofSeconds(60));
        assertThat(env.output().strip()).isEqualTo(System.getenv().getOrDefault("JAVA_HOME", "") + "|1|" + System.getenv("HOME"));
    }

    @Test
    void aMissingCommandFailsWithTheShellsStatus(Rig rig) {
        RunResult r = rig.run(List.of("no-such-command-here"), Duration.ofSeconds(60));
        assertThat(r.exitStatus()).isEqualTo(127);
        assertThat(r.succeeded()).isFalse();
    }

    @Test
    void aHangingCommandIsKilledWithEverythingItStartedAtItsTimeout(Rig rig) {
        RunResult r = rig.run(List.of("sh", "-c", "sleep 1001 & sleep 1002; echo never"), Duration.ofSeconds(3));
        assertThat(r.timedOut()).isTrue();
        assertThat(r.exitStatus()).isEqualTo(137); // SIGKILL
        assertThat(r.elapsed()).isBetween(Duration.ofSeconds(3), Duration.ofSeconds(30));
        assertThat(r.output()).doesNotContain("never");
        // The rig goes on serving, and neither sleep survived.
        RunResult after = rig.run(List.of("sh", "-c", "pgrep -f 'sleep 100[12]' || echo none left"), Duration.ofSeconds(60));
        assertThat(after.output().strip()).isEqualTo("none left");
    }

    /** A process left running would slow every later command on the rig's software CPU: the command's output names it. */
    @Test
    void whatACommandLeavesRunningInItsProcessGroupIsNamedAfterItsOutput(Rig rig) {
        RunResult r = rig.run(List.of("sh", "-c", "sleep 1003 & echo started"), Duration.ofSeconds(60));
        assertThat(r.exitStatus()).isZero();
        assertThat(r.output()).containsPattern("(?m)^started\n+panamax-rig: the command left pid \\d+ running: sleep 1003$");
        RunResult own = rig.run(List.of("sh", "-c", "rm -f /tmp/own-session; setsid sh -c 'touch /tmp/own-session; exec sleep 1004' &"
                + " until [ -e /tmp/own-session ]; do sleep 0.1; done; echo own"), Duration.ofSeconds(60));
        assertThat(own.output()).as("a process in a session of its own is not the command's").isEqualTo("own\n");
        RunResult clean = rig.run(List.of("sh", "-c", "pkill -f 'sleep 100[34]'; echo clean"), Duration.ofSeconds(60));
        assertThat(clean.output()).isEqualTo("clean\n");
    }

    @Test
    void filesWrittenInTheRigAppearOnTheHost(Rig rig) throws Exception {
        Path file = rig.scratch().resolve("from-rig.txt");
        RunResult r = rig.run(List.of("sh", "-c", "echo written in L1 > " + file), Duration.ofSeconds(60));
        assertThat(r.exitStatus()).isZero();
        assertThat(Files.readString(file)).isEqualTo("written in L1\n");
    }

    @Test
    void aJavaMainRunsThereWithTheTestClassPath(Rig rig) {
        RunResult r = rig.runJava(KvmProbe.class.getName(), List.of("hello"), Duration.ofSeconds(120), System.out);
        assertThat(r.exitStatus()).as(r.output()).isZero();
        assertThat(r.output()).contains("probe hello: /dev/kvm is a character device, java " + Runtime.version().feature());
    }
}
