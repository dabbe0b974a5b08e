package dev.panamax.virtio.ratelimit;

import java.math.BigInteger;

/**
 * One token bucket, Firecracker's kind: it starts full, with the one-time burst on top, and refills
 * continuously at {@code size} tokens per refill time up to {@code size}. A request takes its tokens
 * from the burst first, then from the bucket; it waits while the bucket holds fewer than it needs.
 * A request larger than the whole bucket would wait for ever, so it goes through once the bucket is
 * full and leaves it in debt (below zero) by the excess, which the refill pays off before anything
 * else passes: over time the rate is kept exactly. (Firecracker lets such a request through at once
 * and then blocks for the excess; this waits for a full bucket first, which never lets more pass.)
 *
 * <p>Not thread-safe: {@link RateLimiter} guards it. Times are nanoseconds of one monotonic clock.
 */
public final class TokenBucket {
    private static final long NANOS_PER_MILLI = 1_000_000;

    private final BucketSpec spec;
    private final long size;
    private final long refillNanos;
    private long budget; // may be negative: the debt of a request larger than the bucket
    private long burst; // what is left of the one-time burst
    private long lastRefill; // the clock when budget was last brought up to date
    private long remainder; // a part token from the last refill, in units of token * ns / refillNanos: 0 <= remainder < refillNanos

    /** A full bucket as of {@code now}. */
    public TokenBucket(BucketSpec spec, long now) {
        if (!spec.limits()) {
            throw new IllegalArgumentException("a token bucket of size " + spec.size() + " and refill time " + spec.refillTimeMillis()
                    + " ms limits nothing: both must be above 0");
        }
        this.spec = spec;
        this.size = spec.size();
        this.refillNanos = spec.refillTimeMillis() * NANOS_PER_MILLI;
        this.budget = size;
        this.burst = spec.oneTimeBurst();
        this.lastRefill = now;
    }

    public BucketSpec spec() {
        return spec;
    }

    /** Tokens in the bucket as of the last call (negative while in debt); the one-time burst apart. */
    public long budget() {
        return budget;
    }

    /** What is left of the one-time burst. */
    public long burst() {
        return burst;
    }

    /**
     * 0 when {@code tokens} can be {@link #take taken} now, else the nanoseconds until they can (at
     * least 1): the refill makes up the shortfall by then, if nothing else takes tokens meanwhile.
     */
    public long waitFor(long tokens, long now) {
        refill(now);
        long need = tokens - burst;
        if (need <= 0 || need <= budget || budget >= size) { // budget == size: full, so even a larger request passes
            return 0;
        }
        long target = Math.min(need, size); // a request larger than the bucket waits until the bucket is full
        // The refill adds size tokens per refillNanos; remainder of the next token is there already.
        BigInteger missing = BigInteger.valueOf(target - budget).multiply(BigInteger.valueOf(refillNanos))
                .subtract(BigInteger.valueOf(remainder));
        BigInteger[] qr = missing.divideAndRemainder(BigInteger.valueOf(size));
        BigInteger nanos = qr[1].signum() == 0 ? qr[0] : qr[0].add(BigInteger.ONE);
        return Math.max(1, nanos.bitLength() < Long.SIZE ? nanos.longValue() : Long.MAX_VALUE);
    }

    /** Takes {@code tokens}, which {@link #waitFor} just said can be taken: the burst first, then the bucket. */
    public void take(long tokens) {
        long fromBurst = Math.min(burst, tokens);
        burst -= fromBurst;
        budget -= tokens - fromBurst;
    }

    /** Adds what the time since the last refill brings, up to a full bucket. */
    private void refill(long now) {
        long elapsed = now - lastRefill;
        if (elapsed <= 0) {
            return;
        }
        lastRefill = now;
        if (budget >= size) {
            remainder = 0;
            return;
        }
        long added;
        long high = Math.multiplyHigh(elapsed, size);
        long low = elapsed * size;
        if (high == 0 && low >= 0 && low <= Long.MAX_VALUE - remainder) { // the usual case: no overflow
            long total = low + remainder;
            added = total / refillNanos;
            remainder = total % refillNanos;
        } else {
            BigInteger[] qr = BigInteger.valueOf(elapsed).multiply(BigInteger.valueOf(size)).add(BigInteger.valueOf(remainder))
                    .divideAndRemainder(BigInteger.valueOf(refillNanos));
            added = qr[0].bitLength() < Long.SIZE ? qr[0].longValue() : Long.MAX_VALUE;
            remainder = qr[1].longValue();
        }
        if (added >= size - budget) { // no overflow: a debt comes from a full bucket, so size - budget is at most the largest request
            budget = size;
            remainder = 0;
        } else {
            budget += added;
        }
    }
}
