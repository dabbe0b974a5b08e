package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class PollerTest {

    @Test
    void reportsTheTokenOfEachReadyDescriptor() {
        try (Poller poller = Poller.create(4); EventFd a = EventFd.create(true); EventFd b = EventFd.create(true)) {
            poller.add(a, Poller.READABLE, 7);
            poller.add(b, Poller.READABLE, 9);
            assertThat(poller.await(0)).as("nothing signalled yet").isZero();

            b.signal();
            assertThat(poller.await(-1)).isEqualTo(1);
            assertThat(poller.token(0)).isEqualTo(9);
            assertThat(poller.events(0) & Poller.READABLE).isEqualTo(Poller.READABLE);

            a.signal();
            assertThat(poller.await(-1)).isEqualTo(2); // level-triggered: b is still unread
            Set<Integer> tokens = new HashSet<>(Set.of(poller.token(0), poller.token(1)));
            assertThat(tokens).containsExactlyInAnyOrder(7, 9);

            a.read();
            b.read();
            assertThat(poller.await(0)).isZero();
        }
    }

    @Test
    void modifyAndRemoveChangeWhatIsReported() {
        try (Poller poller = Poller.create(1); EventFd e = EventFd.create(true)) {
            poller.add(e, Poller.READABLE, 1);
            poller.modify(e, Poller.WRITABLE, 2); // an eventfd far from its limit is always writable
            assertThat(poller.await(0)).isEqualTo(1);
            assertThat(poller.token(0)).isEqualTo(2);
            assertThat(poller.events(0)).isEqualTo(Poller.WRITABLE);

            poller.remove(e);
            e.signal();
            assertThat(poller.await(0)).isZero();
        }
    }

    @Test
    @Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // a hang guard only, on a thread of its own: a wait in epoll ignores interrupts
    void aSignalFromAnotherThreadEndsAWaitWithoutLimit() throws InterruptedException {
        try (Poller poller = Poller.create(1); EventFd wake = EventFd.create(true)) {
            poller.add(wake, Poller.READABLE, 3);
            AtomicInteger token = new AtomicInteger(-1);
            Thread waiter = Thread.ofPlatform().start(() -> {
                if (poller.await(-1) == 1) token.set(poller.token(0));
            });
            wake.signal();
            waiter.join();
            assertThat(token).hasValue(3);
        }
    }

    @Test
    void refusesUnknownInterestsAndClosedDescriptors() {
        Poller poller = Poller.create(1);
        try (EventFd e = EventFd.create(true)) {
            assertThatThrownBy(() -> poller.add(e, Poller.HANGUP, 1)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> poller.remove(e)).isInstanceOf(NativeCallException.class)
                    .hasMessageContaining("epoll_ctl(DEL").hasMessageContaining("ENOENT");
        }
        poller.close();
        poller.close();
        assertThatThrownBy(() -> poller.await(0)).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(() -> Poller.create(0)).isInstanceOf(IllegalArgumentException.class);
    }
}
