package dev.panamax.virtio.rng;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static dev.panamax.virtio.VirtioTestDriver.await;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.virtio.ratelimit.BucketSpec;
import dev.panamax.virtio.ratelimit.RateLimit;
import dev.panamax.virtio.ratelimit.RateLimiter;
import dev.panamax.vm.GuestMemory;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** virtio-rng driven from Java; the rate limiter on a clock the test moves, so nothing is timed. */
class VirtioRngTest {
    static final int QUEUE_SIZE = 64;
    static final long MS = 1_000_000;

    GuestMemory memory;
    VirtioRng rng;
    VirtioTestDriver driver;
    final AtomicLong clock = new AtomicLong(1_000 * MS);

    @BeforeEach
    void setUp() {
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(4 << 20));
    }

    @AfterEach
    void tearDown() {
        if (rng != null) {
            rng.close();
        }
        memory.close();
    }

    void start(RateLimit limit) {
        rng = new VirtioRng("rng0", QUEUE_SIZE, new RateLimiter(limit, clock::get));
        driver = new VirtioTestDriver(rng, memory);
        driver.start(QUEUE_SIZE);
    }

    /** A buffer of {@code length} bytes, each 0xa5, so that untouched bytes show. */
    long marked(int length) {
        byte[] bytes = new byte[length];
        Arrays.fill(bytes, (byte) 0xa5);
        return driver.allocate(bytes);
    }

    /** Whether no 16-byte stretch of {@code bytes} is still all 0xa5 (by chance: 2^-128 each). */
    static boolean filled(byte[] bytes) {
        for (int at = 0; at < bytes.length; at += 16) {
            byte[] stretch = Arrays.copyOfRange(bytes, at, Math.min(bytes.length, at + 16));
            byte[] untouched = new byte[stretch.length];
            Arrays.fill(untouched, (byte) 0xa5);
            if (Arrays.equals(stretch, untouched)) {
                return false;
            }
        }
        return true;
    }

    @Test
    void offersNoFeaturesOrConfigurationOfItsOwnOnOneQueue() {
        start(RateLimit.NONE);
        assertThat(rng.deviceType()).isEqualTo(4);
        assertThat(rng.queueCount()).isEqualTo(1);
        assertThat(rng.configSize()).isZero();
        assertThat(rng.deviceFeatures()).isEqualTo(1L << VirtioDevice.VIRTIO_F_VERSION_1 | 1L << VirtioDevice.VIRTIO_F_RING_INDIRECT_DESC
                | 1L << VirtioDevice.VIRTIO_F_RING_EVENT_IDX);
    }

    @Test
    void fillsEveryWritableBufferOfAChainWithFreshBytes() {
        start(RateLimit.NONE);
        long first = marked(16);
        long second = marked(48);
        int head = driver.submit(0, writable(first, 16), writable(second, 48));
        Used used = driver.awaitUsed(0);
        assertThat(used).isEqualTo(new Used(head, 64));
        assertThat(filled(driver.read(first, 16))).isTrue();
        assertThat(filled(driver.read(second, 48))).isTrue();

        long again = marked(64);
        driver.submitIndirect(0, writable(again, 64));
        assertThat(driver.awaitUsed(0).length()).isEqualTo(64);
        byte[] before = new byte[64];
        System.arraycopy(driver.read(first, 16), 0, before, 0, 16);
        System.arraycopy(driver.read(second, 48), 0, before, 16, 48);
        assertThat(driver.read(again, 64)).as("each request gets new bytes").isNotEqualTo(before);
        assertThat(rng.bytesGiven()).isEqualTo(128);
        assertThat(rng.requests()).isEqualTo(2);
        assertThat(driver.interrupts().queueCount(0)).isPositive();
    }

    @Test
    void aRequestLargerThanTheCapGetsTheCapAndTheRestOfItsBufferStaysUntouched() {
        start(RateLimit.NONE);
        int length = VirtioRng.MAX_REQUEST_BYTES + 4096;
        long buffer = marked(length);
        driver.submit(0, writable(buffer, length));
        assertThat(driver.awaitUsed(0).length()).isEqualTo(VirtioRng.MAX_REQUEST_BYTES);
        byte[] bytes = driver.read(buffer, length);
        assertThat(filled(Arrays.copyOf(bytes, VirtioRng.MAX_REQUEST_BYTES))).isTrue();
        byte[] rest = Arrays.copyOfRange(bytes, VirtioRng.MAX_REQUEST_BYTES, length);
        byte[] untouched = new byte[rest.length];
        Arrays.fill(untouched, (byte) 0xa5);
        assertThat(rest).isEqualTo(untouched);
    }

    @Test
    void aChainWithADeviceReadableBufferFailsTheDeviceUntilTheDriverResetsIt() {
        start(RateLimit.NONE);
        long request = marked(32);
        long answer = marked(32);
        driver.submit(0, readable(request, 32), writable(answer, 32));
        assertThat(driver.awaitFailure()).contains("descriptor 0").contains("32 device-readable bytes");
        assertThat(driver.pollUsed(0)).as("nothing answered").isNull();
        assertThat(driver.read(answer, 32)).as("nothing written").isEqualTo(driver.read(request, 32));

        driver.reset();
        driver.start(QUEUE_SIZE);
        long buffer = marked(32);
        driver.submit(0, writable(buffer, 32));
        assertThat(driver.awaitUsed(0).length()).isEqualTo(32);
        assertThat(filled(driver.read(buffer, 32))).isTrue();
    }

    @Test
    void aReadableOnlyChainFailsTheDevice() {
        start(RateLimit.NONE);
        driver.submit(0, readable(marked(8), 8));
        assertThat(driver.awaitFailure()).contains("device-readable");
        assertThat(rng.bytesGiven()).isZero();
    }

    @Test
    void requestsBeyondTheOpsBudgetWaitOnTheRingAndCompleteInOrderAfterTheRefill() {
        start(new RateLimit(null, new BucketSpec(2, 0, 1000))); // 2 requests a second
        int[] heads = new int[5];
        for (int i = 0; i < heads.length; i++) {
            heads[i] = driver.offer(0, writable(marked(16), 16));
        }
        driver.notify(0);
        await(() -> rng.rateLimiter().throttledEvents() == 1, "the queue to be throttled");
        assertThat(driver.awaitUsed(0).id()).isEqualTo(heads[0]);
        assertThat(driver.awaitUsed(0).id()).isEqualTo(heads[1]);
        assertThat(driver.pollUsed(0)).as("the clock stands still: nothing more passes").isNull();
        assertThat(rng.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();

        clock.addAndGet(1000 * MS);
        assertThat(driver.awaitUsed(0).id()).isEqualTo(heads[2]);
        assertThat(driver.awaitUsed(0).id()).isEqualTo(heads[3]);
        await(() -> rng.rateLimiter().throttledEvents() == 2, "the queue to be throttled again");
        assertThat(driver.pollUsed(0)).isNull();
        clock.addAndGet(1000 * MS);
        assertThat(driver.awaitUsed(0).id()).isEqualTo(heads[4]);
    }

    @Test
    void theBandwidthBucketCountsTheBytesGivenAndAnUpdateReleasesAParkedRequest() {
        start(new RateLimit(new BucketSpec(100, 0, 100_000), null)); // 100 bytes per 100 s: only the update frees the queue in time
        long first = marked(64);
        long second = marked(64);
        int firstHead = driver.offer(0, writable(first, 64));
        int secondHead = driver.offer(0, writable(second, 64));
        driver.notify(0);
        assertThat(driver.awaitUsed(0)).isEqualTo(new Used(firstHead, 64));
        await(() -> rng.rateLimiter().throttledEvents() == 1, "the second request to wait for 64 bytes of the 36 left");
        assertThat(driver.pollUsed(0)).isNull();
        assertThat(driver.read(second, 64)).as("the parked request is untouched").isEqualTo(marked64());

        rng.rateLimiter().update(new RateLimit(new BucketSpec(1 << 20, 0, 1000), null)); // a PATCH, from this thread
        assertThat(driver.awaitUsed(0)).isEqualTo(new Used(secondHead, 64));
        assertThat(filled(driver.read(second, 64))).isTrue();
    }

    private static byte[] marked64() {
        byte[] bytes = new byte[64];
        Arrays.fill(bytes, (byte) 0xa5);
        return bytes;
    }
}
