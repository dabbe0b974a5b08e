package dev.panamax.it;

import static dev.panamax.it.ScriptOutput.fact;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RunResult;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The control plane boots real Linux where real KVM is (this host with hardware virtualization,
 * else the nested rig): the Java API, the REST API with a client in the same place, and the
 * README's example. The programs run there print what they saw; the assertions are here.
 */
@PanamaxTest
@Timeout(900) // the first run builds the kernel (5-10 minutes on 2 cores)
class ControlPlaneBootTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(400);

    private static List<String> tinyGuest() {
        return List.of(GuestImages.defaultVmlinux().toString(), GuestImages.defaultInitramfs().toString());
    }

    @Test
    void theJavaApiBootsPausesWithTheClockStoppedResumesAndShutsDown(RealKvm kvm) {
        RunResult r = kvm.runJava(EmbeddingApiGuest.class.getName(), tinyGuest(), TIMEOUT, System.out);

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).contains(GuestImages.INIT_MARKER, "embedding: state-when-paused PAUSED",
                "embedding: ticks-while-paused 0", "embedding: state-when-resumed RUNNING", "embedding: shutdown-accepted true",
                "embedding: exit RESET clean=true");
        double acrossPause = Double.parseDouble(fact(r.output(), "embedding: guest-seconds-across-pause (\\S+)"));
        // The guest reads its clock every half second; had the clock run on while paused, it
        // would have moved by the whole pause as well.
        assertThat(acrossPause).as("guest seconds between the last tick before and the first after a "
                + EmbeddingApiGuest.PAUSE.toSeconds() + " s pause").isLessThan(EmbeddingApiGuest.PAUSE.toSeconds() / 2.0);
        Matcher bytes = Pattern.compile("embedding: console-bytes streamed=(\\d+) counted=(\\d+)").matcher(r.output());
        assertThat(bytes.find()).isTrue();
        assertThat(Long.parseLong(bytes.group(1))).as("the console stream got what the VM counted").isPositive()
                .isEqualTo(Long.parseLong(bytes.group(2)));
        assertThat(Long.parseLong(fact(r.output(), "embedding: vcpu-exits (\\d+)"))).isPositive();
        assertThat(r.exitStatus()).as(r.output()).isZero();
    }

    @Test
    void theRestApiBootsTheGuestItConfiguresAndAnswersFiftyReadersDuringTheBoot(RealKvm kvm) {
        RunResult r = kvm.runJava(RestApiBootClient.class.getName(), tinyGuest(), TIMEOUT, System.out);

        assertThat(r.timedOut()).as(r.output()).isFalse();
        String out = r.output();
        assertThat(RestApiBootClient.body(out, "before-start")).containsEntry("state", "Not started").containsEntry("app_name", "Panamax");
        assertThat(out).contains("api: boot-source 204", "api: machine-config 204", "api: start 204");
        assertThat(fact(out, "api: concurrent-statuses \\[([^\\]]*)\\]").split(", ")).hasSize(50).containsOnly("200");
        assertThat(out).contains("api: pause 204", "api: resume 204", "api: ctrl-alt-del 204");
        assertThat(RestApiBootClient.body(out, "while-paused")).containsEntry("state", "Paused");
        assertThat(RestApiBootClient.body(out, "while-running")).containsEntry("state", "Running");
        assertThat(RestApiBootClient.body(out, "too-late")).isEqualTo(
                Map.of("fault_message", "machine-config: can only be set before InstanceStart, and the VM has started"));
        assertThat(RestApiBootClient.body(out, "vm-config").get("machine-config").toString()).contains("vcpu_count=2", "mem_size_mib=256");
        Map<String, Object> metrics = RestApiBootClient.body(out, "metrics");
        assertThat((Long) metrics.get("console_output_bytes")).isPositive();
        assertThat((Long) metrics.get("vcpu_exits")).isPositive();
        assertThat((Long) metrics.get("api_requests")).as("4 before the readers, 50 readers, 7 after with this one").isEqualTo(61L);
        assertThat(out).contains("api: console-has-init-marker true");
        assertThat(out).as("Ctrl-Alt-Del rebooted the guest, which ends serve cleanly").contains("api: serve-exit-status 0");
        assertThat(out).contains("api: socket-left false");
        assertThat(r.exitStatus()).as(r.output()).isZero();
    }

    @Test
    void theReadmeExampleRuns(RealKvm kvm) {
        RunResult r = kvm.runJava(ReadmeExample.class.getName(), tinyGuest(), TIMEOUT, System.out);

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).containsPattern("the guest says: Linux \\S+ 6\\.1\\.").contains("the guest ended: RESET");
        assertThat(r.exitStatus()).as(r.output()).isZero();
    }

    @Test
    void theReadmeShowsTheExampleAsItIs() throws IOException {
        Path module = Path.of(System.getProperty("user.dir"));
        String source = Files.readString(module.resolve("src/test/java/dev/panamax/it/ReadmeExample.java"));
        String shown = source.substring(source.indexOf("import "));
        assertThat(Files.readString(module.resolveSibling("README.md"))).contains("```java\n" + shown + "```\n");
    }

}
