package dev.panamax.virtio.ratelimit;

/**
 * A token bucket's settings, as Firecracker's {@code TokenBucket} object gives them: the bucket holds
 * {@code size} tokens and fills from empty in {@code refillTimeMillis}, so its rate is {@code size}
 * tokens per refill time; {@code oneTimeBurst} tokens more are there once, at the start, and never
 * come back. A size or refill time of 0 switches the bucket off (no limit), as in Firecracker.
 *
 * @param size             tokens the bucket holds when full (bytes or operations), 0 or more
 * @param oneTimeBurst     tokens given once on top of the first full bucket, 0 or more
 * @param refillTimeMillis milliseconds the bucket takes to fill from empty, 0 or more
 */
public record BucketSpec(long size, long oneTimeBurst, long refillTimeMillis) {
    /** The longest refill time: its nanoseconds still fit a long. */
    public static final long MAX_REFILL_TIME_MILLIS = Long.MAX_VALUE / 1_000_000;

    public BucketSpec {
        if (size < 0 || oneTimeBurst < 0 || refillTimeMillis < 0 || refillTimeMillis > MAX_REFILL_TIME_MILLIS) {
            throw new IllegalArgumentException("token bucket size " + size + ", one-time burst " + oneTimeBurst + " and refill time "
                    + refillTimeMillis + " ms: each must be 0 or more (the refill time at most " + MAX_REFILL_TIME_MILLIS + " ms)");
        }
    }

    /** Whether this bucket limits anything: a size and a refill time both above 0. */
    public boolean limits() {
        return size > 0 && refillTimeMillis > 0;
    }
}
