package dev.panamax.devices;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class BootTimerTest {

    private final CmosRtcTest.ManualClock clock = new CmosRtcTest.ManualClock("2025-01-01T00:00:10Z");
    private final BootTimer timer = new BootTimer(clock, Instant.parse("2025-01-01T00:00:00Z"));

    @Test
    void theFirstMagicWriteRecordsTheTimeSinceProcessStartOnce() {
        List<Duration> heard = new ArrayList<>();
        timer.addListener(heard::add);
        timer.out(0, 1, 0x7A);
        timer.out(0, 1, 0);
        assertThat(timer.timeToUserSpace()).isEmpty();
        clock.advance(Duration.ofMillis(250));
        timer.out(0, 1, BootTimer.MAGIC);
        clock.advance(Duration.ofSeconds(5));
        timer.out(0, 1, BootTimer.MAGIC);
        assertThat(timer.timeToUserSpace()).contains(Duration.ofMillis(10_250));
        assertThat(heard).containsExactly(Duration.ofMillis(10_250));
        assertThat(timer.in(0, 1)).isZero();
    }

    @Test
    void aListenerAddedAfterTheMarkHearsItAtOnce() {
        timer.out(0, 4, 0xFFFF_FF00 | BootTimer.MAGIC);
        List<Duration> heard = new ArrayList<>();
        timer.addListener(heard::add);
        assertThat(heard).containsExactly(Duration.ofSeconds(10));
    }

    @Test
    void processStartIsInThePast() {
        assertThat(BootTimer.processStart()).isBefore(Instant.now().plusMillis(1));
    }

    @Test
    void itsStateIsEmptyAndARestoredTimerStillMeasures() {
        timer.out(0, 1, BootTimer.MAGIC);
        StateWriter out = new StateWriter();
        timer.saveState(out);
        assertThat(out.size()).isZero();
        BootTimer fresh = new BootTimer(clock, Instant.parse("2025-01-01T00:00:00Z"));

        fresh.restoreState(new StateReader(out.toByteArray(), "the snapshot"));

        assertThat(fresh.in(0, 1)).isZero();
        assertThat(fresh.timeToUserSpace()).isEmpty();
        fresh.out(0, 1, BootTimer.MAGIC);
        assertThat(fresh.timeToUserSpace()).contains(Duration.ofSeconds(10));
    }

    @Test
    void aNonEmptyStateIsRefused() {
        assertThatThrownBy(() -> timer.restoreState(new StateReader(new byte[] {1, 2}, "the snapshot")))
                .isInstanceOf(StateFormatException.class)
                .hasMessage("the snapshot: 2 bytes left over after the last field");
    }
}
