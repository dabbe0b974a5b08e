package dev.panamax.api;

/**
 * One bucket of a {@link RateLimiter}, Firecracker's {@code TokenBucket}: it holds {@code size}
 * tokens (bytes, or operations) and fills from empty in {@code refillTimeMillis}, so the rate is
 * {@code size} per refill time; {@code oneTimeBurst} tokens more are there once, at the start. A size
 * or refill time of 0 switches the bucket off. A request larger than the bucket still passes, once
 * the bucket is full, and the bucket then stays empty for as long as the excess takes to refill.
 *
 * @param size tokens the full bucket holds, 0 or more
 * @param oneTimeBurst tokens given once on top of the first full bucket, 0 or more
 * @param refillTimeMillis milliseconds the bucket takes to fill from empty, 0 or more
 */
public record TokenBucket(long size, long oneTimeBurst, long refillTimeMillis) {
    /** The longest refill time, in milliseconds: about 292 years. */
    public static final long MAX_REFILL_TIME_MILLIS = Long.MAX_VALUE / 1_000_000;

    public TokenBucket {
        if (size < 0) {
            throw new IllegalArgumentException("token bucket size " + size + " is negative: give 0 (no limit) or more");
        }
        if (oneTimeBurst < 0) {
            throw new IllegalArgumentException("token bucket one-time burst " + oneTimeBurst + " is negative: give 0 or more");
        }
        if (refillTimeMillis < 0 || refillTimeMillis > MAX_REFILL_TIME_MILLIS) {
            throw new IllegalArgumentException("token bucket refill time " + refillTimeMillis + " ms is not 0 to " + MAX_REFILL_TIME_MILLIS);
        }
    }

    /** A bucket without a one-time burst. */
    public TokenBucket(long size, long refillTimeMillis) {
        this(size, 0, refillTimeMillis);
    }

    /** At most {@code perSecond} a second: a bucket of one second's worth, refilled in a second. */
    public static TokenBucket perSecond(long perSecond) {
        return new TokenBucket(perSecond, 0, 1000);
    }
}
