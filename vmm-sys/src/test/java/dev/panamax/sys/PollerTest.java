package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
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
    void aSignalFromAnotherThreadEndsAWaitWithoutLimit() throws Exception {
        try (Poller poller = Poller.create(1); EventFd wake = EventFd.create(true)) {
            poller.add(wake, Poller.READABLE, 3);
            AtomicInteger count = new AtomicInteger(-1);
            AtomicInteger token = new AtomicInteger(-1);
            AtomicInteger events = new AtomicInteger(-1);
            Thread waiter = Thread.ofPlatform().daemon().start(() -> {
                int ready = poller.await(-1);
                if (ready > 0) {
                    token.set(poller.token(0));
                    events.set(poller.events(0));
                }
                count.set(ready);
            });
            while (!aThreadSleepsInEpollWaitWithoutLimit(poller.fd())) {
                assertThat(waiter.isAlive()).as("await(-1) returned %s before the signal", count).isTrue();
                if (Thread.interrupted()) {
                    throw new InterruptedException(); // the hang guard gave up
                }
                Thread.yield();
            }
            assertThat(count).as("await(-1) returned before the signal").hasValue(-1);

            wake.signal();
            waiter.join();
            assertThat(count).as("the wait ended with one ready descriptor, not a timeout or EINTR").hasValue(1);
            assertThat(token).hasValue(3);
            assertThat(events.get() & Poller.READABLE).isEqualTo(Poller.READABLE);
        }
    }

    // x86-64 system call numbers: epoll_wait, which glibc's epoll_wait calls, and epoll_pwait, should a libc use that
    private static final Set<String> EPOLL_WAIT_CALLS = Set.of("232", "281");

    /**
     * Whether a thread of this process sleeps in epoll_wait on {@code epfd} with no time limit.
     * {@code /proc/self/task/<tid>/syscall} shows a thread's system call and its arguments only
     * while the thread is off the CPU, and the state S in its {@code stat} says it sleeps. Nothing is
     * ready on {@code epfd}, so a thread seen inside that call stays there until signalled.
     */
    private static boolean aThreadSleepsInEpollWaitWithoutLimit(int epfd) throws IOException {
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path task : tasks) {
                if (inEpollWaitWithoutLimit(task, epfd) && sleeping(task)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static boolean inEpollWaitWithoutLimit(Path task, int epfd) {
        // "<nr> <arg1> ... <arg6> <sp> <pc>" in a call; "running", or "-1 <sp> <pc>" outside one
        String[] fields = readOrEmpty(task.resolve("syscall")).trim().split(" ");
        return fields.length >= 5 && EPOLL_WAIT_CALLS.contains(fields[0])
                && register(fields[1]) == epfd && (int) register(fields[4]) == -1; // int arguments: a register's low half
    }

    private static long register(String hex) {
        return Long.parseUnsignedLong(hex.substring(2), 16); // printed as 0x%lx
    }

    private static boolean sleeping(Path task) {
        // "<pid> (<comm>) <state> ...": the name may hold spaces and parentheses, the state follows the last ')'
        String stat = readOrEmpty(task.resolve("stat"));
        int end = stat.lastIndexOf(')');
        return end >= 0 && stat.length() > end + 2 && stat.charAt(end + 2) == 'S';
    }

    private static String readOrEmpty(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) { // the thread ended since the directory was listed
            return "";
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
