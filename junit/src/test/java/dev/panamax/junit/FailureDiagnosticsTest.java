package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.guest.ExecAgent;
import dev.panamax.rig.HostKvm;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** What a failed test's report gets: the console's end and the kernel log (here from {@link HostAgentServer}'s stand-in guest). */
@Timeout(180) // guards against a hang only
class FailureDiagnosticsTest {
    @TempDir Path tmp;

    /** Collects entries into {@code entries}, refusing a blank value as JUnit's publishReportEntry does. */
    private static BiConsumer<String, String> publishingLikeJUnit(Map<String, String> entries) {
        return (key, value) -> {
            if (value.isBlank()) throw new IllegalArgumentException("value must not be null or blank");
            entries.put(key, value);
        };
    }

    @Test
    void aFailureGetsTheConsoleAndTheKernelLogAsEntriesAndAsASuppressedException() throws IOException {
        Path agent = ExecAgent.compile(Files.createDirectories(tmp.resolve("build")), tmp.resolve("panamax-agent"));
        Map<String, String> entries = new LinkedHashMap<>();
        AssertionError failure = new AssertionError("expected 0 but was 1");
        try (GuestConnection guest = GuestConnection.start(new HostKvm(), "this host", HostAgentServer.class.getName(),
                List.of(agent.toString()), Duration.ofSeconds(60), Duration.ofSeconds(120))) {
            PanamaxExtension.attachDiagnostics(guest, failure, publishingLikeJUnit(entries));
        }
        assertThat(entries).containsOnlyKeys("panamax.console", "panamax.kernel-log");
        assertThat(entries.get("panamax.console")).contains("host agent loop started");
        assertThat(entries.get("panamax.kernel-log")).isNotEmpty(); // this host's dmesg, or why it could not be read
        assertThat(failure.getSuppressed()).hasSize(1);
        assertThat(failure.getSuppressed()[0]).isInstanceOf(PanamaxExtension.GuestDiagnostics.class)
                .hasMessageContaining("the guest (this host) at this failure").hasMessageContaining("host agent loop started")
                .hasMessageContaining(entries.get("panamax.kernel-log"));
    }

    /** JUnit refuses a blank entry (PreconditionViolationException); a quiet guest's console can be blank. */
    @Test
    void blankTextIsReportedAsSuch() {
        assertThat(PanamaxExtension.reportable(" \n")).isEqualTo("(empty)");
        assertThat(PanamaxExtension.reportable("x")).isEqualTo("x");
    }

    @Test
    void aPublisherThatRefusesAnEntryLeavesTheTestsFailureAsItWas() {
        AssertionError failure = new AssertionError("boom");
        GuestConnection guest = GuestConnection.start(new HostKvm(), "this host", EndingServer.class.getName(), List.of(),
                Duration.ofSeconds(60), Duration.ofSeconds(120));
        try {
            PanamaxExtension.attachDiagnostics(guest, failure, (key, value) -> {
                throw new IllegalStateException("no entries here");
            });
        } finally {
            guest.close();
        }
        assertThat(failure).hasMessage("boom");
        assertThat(failure.getSuppressed()).hasSize(2);
        assertThat(failure.getSuppressed()[0]).hasMessage("no entries here");
        assertThat(failure.getSuppressed()[1]).isInstanceOf(PanamaxExtension.GuestDiagnostics.class);
    }

    @Test
    void aGuestThatHasEndedSaysSoInsteadOfAKernelLog() {
        Map<String, String> entries = new LinkedHashMap<>();
        AssertionError failure = new AssertionError("boom");
        GuestConnection guest = GuestConnection.start(new HostKvm(), "this host", EndingServer.class.getName(), List.of(),
                Duration.ofSeconds(60), Duration.ofSeconds(120));
        try {
            try {
                guest.exec("true");
            } catch (GuestException expected) {
                // the stand-in guest ends at its first command
            }
            PanamaxExtension.attachDiagnostics(guest, failure, publishingLikeJUnit(entries));
        } finally {
            guest.close();
        }
        assertThat(entries.get("panamax.console")).contains("Kernel panic - not syncing: test");
        assertThat(entries.get("panamax.kernel-log")).isEqualTo("(the guest has ended)");
    }
}
