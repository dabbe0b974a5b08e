package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.Panamax;
import dev.panamax.control.Json;
import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RunResult;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Firecracker's getting-started sequence, as its doc sends it with curl over the socket (the
 * logger, the boot source with the doc's boot arguments, the machine config, InstanceStart; no
 * rootfs drive: the tiny guest runs from its initramfs), against {@code panamax firecracker
 * --api-sock} where real KVM is (the rig here). The guest's console and the log file show it ran.
 * NEEDS THE RIG: not run by the unit-test build.
 */
@PanamaxTest
@Timeout(900)
class FirecrackerRigTest {

    @Test
    void firecrackersGettingStartedCallsBootTheTinyGuest(RealKvm kvm) {
        String firecracker = kvm.javaShellCommand(Panamax.class.getName(), List.of("firecracker", "--api-sock", "/tmp/fc.sock",
                "--id", "getting-started"));
        String bootArgs = "console=ttyS0 reboot=k panic=1 pci=off quiet panamax.run=\"echo guest-ran-from-firecracker-api; uname -s\"";
        String script = String.join("\n",
                "rm -f /tmp/fc.sock /tmp/fc.log /tmp/fc.out",
                firecracker + " > /tmp/fc.out 2>&1 &",
                "fc=$!",
                "while [ ! -S /tmp/fc.sock ] && kill -0 $fc 2>/dev/null; do sleep 0.2; done",
                "api() { echo \"step $2 $(curl -s -o /dev/null -w '%{http_code}' -X PUT --unix-socket /tmp/fc.sock --data \"$3\""
                        + " \"http://localhost/$1\")\"; }",
                "touch /tmp/fc.log",
                "api logger logger " + quote(Json.write(Map.of("log_path", "/tmp/fc.log", "level", "Debug",
                        "show_level", true, "show_log_origin", true))),
                "api boot-source boot-source " + quote("{\"kernel_image_path\": " + Json.quote(GuestImages.defaultVmlinux().toString())
                        + ", \"initrd_path\": " + Json.quote(GuestImages.defaultInitramfs().toString())
                        + ", \"boot_args\": " + Json.quote(bootArgs) + "}"),
                "api machine-config machine-config " + quote("{\"vcpu_count\": 2, \"mem_size_mib\": 1024}"),
                "sleep 0.015",
                "api actions start " + quote("{\"action_type\": \"InstanceStart\"}"),
                "echo \"instance $(curl -s --unix-socket /tmp/fc.sock http://localhost/)\"",
                "wait $fc; echo fc-status=$?",
                "echo socket-left=$([ -e /tmp/fc.sock ] && echo yes || echo no)",
                "sed 's/^/fc: /' /tmp/fc.out",
                "sed 's/^/log: /' /tmp/fc.log");

        RunResult r = kvm.run(List.of("sh", "-c", script), Duration.ofSeconds(600), System.out);

        String out = r.output();
        assertThat(r.timedOut()).as(out).isFalse();
        assertThat(out).contains("step logger 204", "step boot-source 204", "step machine-config 204", "step start 204");
        assertThat(out).contains("fc: " + GuestImages.INIT_MARKER).containsPattern("(?m)^fc: guest-ran-from-firecracker-api\\r?$")
                .containsPattern("(?m)^fc: Linux\\r?$");
        assertThat(out).as("the guest's reboot ends the VMM cleanly").contains("fc-status=0", "socket-left=no");
        assertThat(out).containsPattern("instance \\{\"id\":\"getting-started\",\"state\":\"(Running|Exited)\"");
        assertThat(out).as("Debug lines, with level and origin, in the doc's log file")
                .containsPattern("log: \\S+ \\[getting-started:[^:]+:DEBUG:dev\\.panamax\\.control\\.ControlPlane\\.handle\\]"
                        + " The API server received a PUT request on /actions");
    }

    /** {@code text} single-quoted for sh (the JSON here has no single quote). */
    private static String quote(String text) {
        assertThat(text).doesNotContain("'");
        return "'" + text + "'";
    }
}
