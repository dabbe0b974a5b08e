package dev.panamax.virtio.net;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static dev.panamax.virtio.VirtioTestDriver.await;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.virtio.ratelimit.BucketSpec;
import dev.panamax.virtio.ratelimit.RateLimit;
import dev.panamax.virtio.ratelimit.RateLimiter;
import dev.panamax.vm.GuestMemory;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** virtio-net's receive and transmit limiters on a clock the test moves (see VirtioBlkRateLimitTest). */
class VirtioNetRateLimitTest {
    static final int QUEUE_SIZE = 64;
    static final int RX = VirtioNet.RX;
    static final int TX = VirtioNet.TX;
    static final int HEADER = VirtioNetHeader.BYTES;
    static final long MS = 1_000_000;

    final AtomicLong clock = new AtomicLong(1_000 * MS);
    GuestMemory memory;
    FakeBackend backend;
    VirtioNet net;
    VirtioTestDriver driver;

    @BeforeEach
    void setUp() {
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(4 << 20));
    }

    @AfterEach
    void tearDown() {
        if (net != null) {
            net.close();
        }
        memory.close();
    }

    void start(RateLimit receive, RateLimit transmit) {
        backend = new FakeBackend(Set.of());
        net = new VirtioNet("net0", VirtioNetTest.MAC, backend, QUEUE_SIZE, new RateLimiter(receive, clock::get),
                new RateLimiter(transmit, clock::get));
        driver = new VirtioTestDriver(net, memory);
        driver.start(VirtioNetTest.BASE_FEATURES, QUEUE_SIZE);
    }

    static byte[] packet(int seed) {
        return VirtioNetTest.concat(VirtioNetTest.header(0, 0, 0), VirtioNetTest.frame(100, seed));
    }

    @Test
    void framesFromTheGuestBeyondTheBudgetWaitOnTheRingAndAllGoOutInOrder() throws InterruptedException {
        start(RateLimit.NONE, new RateLimit(null, new BucketSpec(2, 0, 1000))); // 2 frames a second
        for (int i = 0; i < 5; i++) {
            byte[] p = packet(i);
            driver.offer(TX, readable(driver.allocate(p), p.length));
        }
        driver.notify(TX);
        await(() -> net.transmitLimiter().throttledEvents() == 1, "the transmit queue to be throttled");
        List<byte[]> sent = new ArrayList<>();
        backend.sent.drainTo(sent);
        assertThat(sent).hasSize(2);
        assertThat(driver.pollUsed(TX)).isNotNull();
        assertThat(driver.pollUsed(TX)).isNotNull();
        assertThat(driver.pollUsed(TX)).as("the clock stands still: the third frame waits").isNull();

        clock.addAndGet(1000 * MS);
        driver.awaitUsed(TX);
        driver.awaitUsed(TX);
        await(() -> net.transmitLimiter().throttledEvents() == 2, "the transmit queue to be throttled again");
        clock.addAndGet(1000 * MS);
        driver.awaitUsed(TX);
        while (sent.size() < 5) {
            sent.add(backend.sent.take());
        }
        for (int i = 0; i < 5; i++) {
            assertThat(sent.get(i)).as("frame %d", i).isEqualTo(packet(i));
        }
        assertThat(backend.dropped().fromGuest()).isZero();
    }

    @Test
    void framesForTheGuestBeyondTheBudgetStayInTheBackendUntilAnUpdateLetsThemThrough() {
        start(new RateLimit(new BucketSpec(100, 0, 1_000_000), null), RateLimit.NONE); // 100 bytes per 1000 s
        List<Long> buffers = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            long b = driver.allocate(HEADER + 1514);
            buffers.add(b);
            driver.offer(RX, writable(b, HEADER + 1514));
        }
        driver.notify(RX);
        for (int i = 0; i < 3; i++) {
            backend.offer(packet(10 + i));
        }
        Used first = driver.awaitUsed(RX);
        assertThat(first.length()).isEqualTo(HEADER + 100);
        await(() -> net.receiveLimiter().throttledEvents() == 1, "the receive queue to be throttled");
        assertThat(driver.pollUsed(RX)).isNull();
        assertThat(backend.waiting).as("one frame in the device's hands, the other still in the backend").hasSize(1);

        net.receiveLimiter().update(RateLimit.NONE); // PATCH from this thread, the clock standing still
        for (int i = 0; i < 3; i++) {
            Used used = i == 0 ? first : driver.awaitUsed(RX);
            assertThat(used.id()).isEqualTo(i);
            assertThat(driver.read(buffers.get(i), HEADER + 100)).isEqualTo(packet(10 + i));
        }
        assertThat(backend.dropped().toGuest()).isZero();
        assertThat(net.receiveLimiter().throttledEvents()).isEqualTo(1);
    }
}
