package dev.panamax.virtio.ratelimit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class RateLimiterTest {
    private static final long MS = 1_000_000;
    private final AtomicLong now = new AtomicLong(1_000 * MS);

    private RateLimiter limiter(BucketSpec bandwidth, BucketSpec ops) {
        return new RateLimiter(new RateLimit(bandwidth, ops), now::get);
    }

    private void advanceMillis(long millis) {
        now.addAndGet(millis * MS);
    }

    @Test
    void aFullBucketPassesItsSizeThenWaitsForTheRefill() {
        RateLimiter l = limiter(new BucketSpec(1000, 0, 100), null); // 10,000 bytes per second
        assertEquals(0, l.tryConsume(600));
        assertEquals(0, l.tryConsume(400));
        long wait = l.tryConsume(100); // empty: 100 bytes take 10 ms to come
        assertEquals(10 * MS, wait);
        advanceMillis(9);
        assertTrue(l.tryConsume(100) > 0, "90 bytes are not 100");
        advanceMillis(1);
        assertEquals(0, l.tryConsume(100));
        assertEquals(1, l.throttledEvents(), "one stretch of waiting, though refused twice");
    }

    @Test
    void theRefillStopsAtTheBucketsSize() {
        RateLimiter l = limiter(new BucketSpec(1000, 0, 100), null);
        assertEquals(0, l.tryConsume(1000));
        advanceMillis(10_000); // a hundred refills' time: still one bucket
        assertEquals(0, l.tryConsume(1000));
        assertTrue(l.tryConsume(1) > 0);
    }

    @Test
    void partTokensAreNotLostBetweenFrequentRefills() {
        RateLimiter l = limiter(new BucketSpec(10, 0, 1000), null); // one byte per 100 ms
        assertEquals(0, l.tryConsume(10));
        for (int i = 0; i < 99; i++) { // 99 steps of 1 ms: each alone brings no whole token
            now.addAndGet(MS);
            assertTrue(l.tryConsume(1) > 0);
        }
        now.addAndGet(MS);
        assertEquals(0, l.tryConsume(1), "100 ms bring one token, in steps or not");
    }

    @Test
    void theOneTimeBurstComesFirstAndOnce() {
        RateLimiter l = limiter(new BucketSpec(100, 500, 1000), null);
        assertEquals(0, l.tryConsume(550)); // 500 of the burst and 50 of the bucket
        assertEquals(0, l.tryConsume(50));
        assertTrue(l.tryConsume(1) > 0);
        advanceMillis(100_000);
        assertEquals(0, l.tryConsume(100));
        assertTrue(l.tryConsume(1) > 0, "the burst does not come back");
    }

    @Test
    void aRequestLargerThanTheBucketPassesWhenItIsFullAndTheDebtIsPaid() {
        RateLimiter l = limiter(new BucketSpec(1000, 0, 100), null);
        assertEquals(0, l.tryConsume(300));
        long wait = l.tryConsume(2500); // waits for a full bucket: 300 bytes, 30 ms
        assertEquals(30 * MS, wait);
        advanceMillis(30);
        assertEquals(0, l.tryConsume(2500)); // passes, 1500 bytes in debt
        assertEquals(160 * MS, l.tryConsume(100), "the debt of 1500 and the 100 asked for take 160 ms");
        advanceMillis(160);
        assertEquals(0, l.tryConsume(100));
    }

    @Test
    void bothBucketsMustAgreeAndARefusalTakesNothing() {
        RateLimiter l = limiter(new BucketSpec(1000, 0, 1000), new BucketSpec(2, 0, 1000)); // 1000 B/s, 2 ops/s
        assertEquals(0, l.tryConsume(100));
        assertEquals(0, l.tryConsume(100));
        assertEquals(500 * MS, l.tryConsume(100), "out of operations: half a second for the next");
        advanceMillis(500);
        assertEquals(0, l.tryConsume(800), "the refused request took no bytes: 800 of them are there");
        assertTrue(l.tryConsume(600) > 0);
    }

    @Test
    void withoutLimitsEverythingPasses() {
        RateLimiter l = RateLimiter.unlimited();
        for (int i = 0; i < 1000; i++) {
            assertEquals(0, l.tryConsume(1L << 32));
        }
        RateLimiter off = limiter(new BucketSpec(0, 0, 100), new BucketSpec(100, 0, 0)); // size 0, refill time 0: off
        assertEquals(0, off.tryConsume(1L << 40));
        assertEquals(0, off.throttledEvents());
    }

    @Test
    void anUpdateKeepsAnUnchangedBucketAndStartsAChangedOneFull() {
        AtomicInteger woken = new AtomicInteger();
        BucketSpec ops = new BucketSpec(1, 0, 1000);
        RateLimiter l = limiter(new BucketSpec(1000, 0, 1000), ops);
        l.onUpdate(woken::incrementAndGet);
        assertEquals(0, l.tryConsume(1000));
        assertTrue(l.tryConsume(1000) > 0);
        l.update(new RateLimit(new BucketSpec(1_000_000, 0, 1000), ops)); // bandwidth raised, ops unchanged
        assertEquals(1, woken.get());
        assertTrue(l.tryConsume(1000) > 0, "the ops bucket kept its state: its one operation is spent");
        advanceMillis(1000);
        assertEquals(0, l.tryConsume(500_000), "the new bandwidth bucket is full");
        l.update(RateLimit.NONE);
        assertEquals(0, l.tryConsume(1L << 40));
        assertEquals(RateLimit.NONE, l.limit());
    }

    @Test
    void hugeSizesAndRefillTimesDoNotOverflow() {
        RateLimiter l = limiter(new BucketSpec(Long.MAX_VALUE / 2, 0, BucketSpec.MAX_REFILL_TIME_MILLIS), null);
        assertEquals(0, l.tryConsume(Long.MAX_VALUE / 2));
        assertTrue(l.tryConsume(Long.MAX_VALUE / 4) > 0);
        now.addAndGet(Long.MAX_VALUE / 2); // about half the refill time: half the bucket comes back
        assertEquals(0, l.tryConsume(Long.MAX_VALUE / 4 - 1));
    }

    @Test
    void negativeSettingsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new BucketSpec(-1, 0, 100));
        assertThrows(IllegalArgumentException.class, () -> new BucketSpec(1, -1, 100));
        assertThrows(IllegalArgumentException.class, () -> new BucketSpec(1, 0, -100));
    }
}
