package dev.panamax.api;

import dev.panamax.virtio.ratelimit.BucketSpec;
import dev.panamax.virtio.ratelimit.RateLimit;

/**
 * Limits a device's traffic, as Firecracker's {@code RateLimiter}: a bucket of bytes and a bucket of
 * operations (a disk's requests, a network interface's frames). A request waits until both buckets
 * hold its tokens; nothing is dropped. Either bucket may be null: no limit of that kind.
 * Given to a {@link Drive} or {@link NetworkInterface} before the VM is built, or changed while it
 * runs with {@link VirtualMachine#updateDrive} and {@link VirtualMachine#updateNetworkInterface}.
 *
 * @param bandwidth bytes, or null for no limit
 * @param ops operations, or null for no limit
 */
public record RateLimiter(TokenBucket bandwidth, TokenBucket ops) {
    /** No limit. */
    public static final RateLimiter NONE = new RateLimiter(null, null);

    /** At most {@code bytesPerSecond}, in buckets of one second. */
    public static RateLimiter bandwidth(long bytesPerSecond) {
        return new RateLimiter(TokenBucket.perSecond(bytesPerSecond), null);
    }

    /**
     * This limiter with the buckets of {@code change} that are not null, as Firecracker's {@code
     * PATCH} applies a rate limiter: a bucket left out stays as it is.
     */
    public RateLimiter updatedBy(RateLimiter change) {
        return new RateLimiter(change.bandwidth != null ? change.bandwidth : bandwidth, change.ops != null ? change.ops : ops);
    }

    /** The device's settings for {@code limiter} (null: none). */
    static RateLimit toDevice(RateLimiter limiter) {
        return limiter == null ? RateLimit.NONE : new RateLimit(toDevice(limiter.bandwidth), toDevice(limiter.ops));
    }

    /** The device's settings as a limiter: buckets switched off or absent there are null here. */
    static RateLimiter ofDevice(RateLimit limit) {
        return new RateLimiter(ofDevice(limit.bandwidth()), ofDevice(limit.ops()));
    }

    private static TokenBucket ofDevice(BucketSpec spec) {
        return spec == null || !spec.limits() ? null : new TokenBucket(spec.size(), spec.oneTimeBurst(), spec.refillTimeMillis());
    }

    private static BucketSpec toDevice(TokenBucket bucket) {
        return bucket == null ? null : new BucketSpec(bucket.size(), bucket.oneTimeBurst(), bucket.refillTimeMillis());
    }
}
