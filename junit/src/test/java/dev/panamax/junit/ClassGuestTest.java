package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.rig.HostKvm;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RigStoppedException;
import dev.panamax.rig.RunResult;
import java.io.InputStream;
import java.io.OutputStream;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A class's guest whose place stops under it (a wedged rig, here a server process on this host whose
 * end is reported as the rig's): with {@link Reset#SNAPSHOT} the next test gets the guest booted again in
 * a fresh place; with {@link Reset#NONE}, or a guest that ended by itself, it does not.
 */
@Timeout(120) // guards against a hang only
class ClassGuestTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(60);

    /** This host, where a server's exit with {@link #STOPPED} is reported as a rig that stopped under it. */
    static final class StoppingPlace implements RealKvm {
        static final int STOPPED = 75;
        private final HostKvm host = new HostKvm();

        @Override
        public RunResult run(List<String> argv, Duration timeout, OutputStream echo, InputStream input) {
            RunResult r = host.run(argv, timeout, echo, input);
            if (r.exitStatus() == STOPPED) throw new RigStoppedException("the rig stopped while running java (a test's)", null);
            return r;
        }

        @Override
        public List<String> jvmOptions() {
            return host.jvmOptions();
        }
    }

    private final StoppingPlace place = new StoppingPlace();
    private final AtomicInteger servers = new AtomicInteger();

    private GuestConnection server() {
        return GuestConnection.start(place, "a test's place", StoppingPlaceServer.class.getName(), List.of("server-" + servers.incrementAndGet()),
                TIMEOUT, TIMEOUT);
    }

    private ClassGuest classGuest(Reset reset) {
        Supplier<GuestConnection> fresh = this::server;
        return new ClassGuest(server(), reset, fresh);
    }

    /** A boot whose place stopped under it is the test bed's failure, which the extension answers with a boot in a fresh rig. */
    @Test
    void aBootWhosePlaceStoppedIsAStuckPlaceNotAGuestThatFailed() {
        assertThatThrownBy(() -> GuestConnection.start(place, "a test's place", StoppingPlaceServer.class.getName(), List.of("stops-at-boot"),
                TIMEOUT, TIMEOUT)).isInstanceOf(GuestConnection.StuckPlaceException.class).hasMessageContaining("the rig stopped");
    }

    @Test
    void aResetWhosePlaceStoppedBootsTheGuestAgainInAFreshPlace() {
        ClassGuest guest = classGuest(Reset.SNAPSHOT);
        try {
            assertThat(guest.exec("true").stdout()).isEqualTo("served by server-1\n");
            GuestConnection first = guest.connection();
            guest.prepareForTest(); // the reset: its place stops under it
            assertThat(first.alive()).isFalse();
            assertThat(first.placeStopped()).isTrue();
            assertThat(guest.exec("true").stdout()).isEqualTo("served by server-2\n");
            assertThat(guest.console()).containsOnlyOnce("panamax: init reached");
        } finally {
            guest.close();
        }
    }

    @Test
    void aTestsFirstCommandWhosePlaceStoppedRunsOnceMoreInAGuestBootedInAFreshPlace() {
        ClassGuest guest = classGuest(Reset.SNAPSHOT);
        try {
            assertThat(guest.exec("stop-place-in", "server-1").stdout()).isEqualTo("served by server-2\n");
            assertThat(servers).hasValue(2);
        } finally {
            guest.close();
        }
    }

    @Test
    void aGuestWhosePlaceStoppedDuringATestBootsAgainBeforeTheNext() {
        ClassGuest guest = classGuest(Reset.SNAPSHOT);
        try {
            guest.exec("true");
            assertThatThrownBy(() -> guest.exec("stop-place")).isInstanceOf(GuestException.class).hasMessageContaining("the rig stopped");
            guest.prepareForTest();
            assertThat(guest.exec("true").stdout()).isEqualTo("served by server-2\n");
        } finally {
            guest.close();
        }
    }

    @Test
    void aPlaceThatKeepsStoppingIsGivenUpOn() {
        ClassGuest guest = classGuest(Reset.SNAPSHOT);
        try {
            for (int i = 0; i < ClassGuest.BOOTS_AGAIN; i++) {
                guest.exec("true"); // (a test's first command would run once more)
                assertThatThrownBy(() -> guest.exec("stop-place")).isInstanceOf(GuestException.class);
                guest.prepareForTest();
            }
            guest.exec("true");
            assertThatThrownBy(() -> guest.exec("stop-place")).isInstanceOf(GuestException.class);
            assertThatThrownBy(guest::prepareForTest).isInstanceOf(GuestException.class)
                    .hasMessageContaining("booted again " + ClassGuest.BOOTS_AGAIN + " times already");
            assertThat(servers).hasValue(1 + ClassGuest.BOOTS_AGAIN);
        } finally {
            guest.close();
        }
    }

    @Test
    void withoutResetTheGuestDoesNotBootAgain() {
        ClassGuest guest = classGuest(Reset.NONE);
        try {
            assertThatThrownBy(() -> guest.exec("stop-place")).isInstanceOf(GuestException.class);
            guest.prepareForTest();
            assertThatThrownBy(() -> guest.exec("true")).isInstanceOf(GuestException.class).hasMessageContaining("the rig stopped");
            assertThat(servers).hasValue(1);
        } finally {
            guest.close();
        }
    }

    @Test
    void aGuestThatEndedByItselfDoesNotBootAgain() {
        ClassGuest guest = classGuest(Reset.SNAPSHOT);
        try {
            assertThatThrownBy(() -> guest.exec("end")).isInstanceOf(GuestException.class).hasMessageContaining("guest panic");
            guest.prepareForTest();
            assertThatThrownBy(() -> guest.exec("true")).isInstanceOf(GuestException.class).hasMessageContaining("guest panic");
            assertThat(servers).hasValue(1);
        } finally {
            guest.close();
        }
    }
}
