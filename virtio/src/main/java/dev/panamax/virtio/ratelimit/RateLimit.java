package dev.panamax.virtio.ratelimit;

/**
 * A rate limiter's settings, as Firecracker's {@code RateLimiter} object gives them: a bucket of
 * bytes and a bucket of operations (requests, frames), each null or {@linkplain BucketSpec#limits()
 * switched off} for no limit.
 */
public record RateLimit(BucketSpec bandwidth, BucketSpec ops) {
    /** No limit at all. */
    public static final RateLimit NONE = new RateLimit(null, null);

    /** Whether either bucket limits anything. */
    public boolean limits() {
        return bandwidth != null && bandwidth.limits() || ops != null && ops.limits();
    }
}
