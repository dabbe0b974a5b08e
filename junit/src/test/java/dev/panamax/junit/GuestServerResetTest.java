package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** How a reset restores the snapshot again when the restored guest's agent never came. */
class GuestServerResetTest {
    @Test
    void aRestoredGuestWhoseAgentNeverCameIsRestoredOnceMore() throws Exception {
        List<String> log = new ArrayList<>();
        AtomicInteger restores = new AtomicInteger();
        String why = GuestServer.restoredUntilAgent(2, () -> restores.incrementAndGet() == 1 ? "no agent within 60 s" : null, log::add);
        assertThat(why).isNull();
        assertThat(restores).hasValue(2);
        assertThat(log).containsExactly("reset: no agent within 60 s; restoring the snapshot once more");
    }

    @Test
    void theResetFailsWithTheLastReasonWhenNoRestoreServes() throws Exception {
        List<String> log = new ArrayList<>();
        AtomicInteger restores = new AtomicInteger();
        String why = GuestServer.restoredUntilAgent(2, () -> "no agent, restore " + restores.incrementAndGet(), log::add);
        assertThat(why).isEqualTo("no agent, restore 2");
        assertThat(log).hasSize(1);
    }

    @Test
    void aRestoreWhoseAgentCameIsTheOnlyOne() throws Exception {
        AtomicInteger restores = new AtomicInteger();
        assertThat(GuestServer.restoredUntilAgent(2, () -> {
            restores.incrementAndGet();
            return null;
        }, line -> {})).isNull();
        assertThat(restores).hasValue(1);
    }
}
