package dev.panamax.virtio.ratelimit;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * A device queue's rate limiter: a bandwidth bucket (a request's bytes) and an operations bucket (1
 * per request), either or both off. A request passes only when both buckets have its tokens, and then
 * takes from both; when either refuses, nothing is taken and the caller learns how long to wait.
 *
 * <p>The queue's I/O thread calls {@link #tryConsume}; any thread may call {@link #update} (a
 * {@code PATCH} of the device), after which the listener given to {@link #onUpdate} wakes the queue
 * so that a request waiting under the old limit is looked at again under the new one. A limiter
 * without limits costs one volatile read per request.
 */
public final class RateLimiter {
    private final LongSupplier clock;
    private final AtomicLong throttledEvents = new AtomicLong();
    private volatile boolean unlimited;
    private volatile Runnable updateListener = () -> { };
    private RateLimit limit; // guarded by this
    private TokenBucket bandwidth; // guarded by this; null when off
    private TokenBucket ops; // guarded by this; null when off
    private boolean blocked; // guarded by this: the last request was refused

    /** A limiter on {@link System#nanoTime()}. */
    public RateLimiter(RateLimit limit) {
        this(limit, System::nanoTime);
    }

    /** @param clock nanoseconds of a monotonic clock (tests pass their own) */
    public RateLimiter(RateLimit limit, LongSupplier clock) {
        this.clock = Objects.requireNonNull(clock, "clock");
        update(limit);
    }

    /** A limiter that limits nothing until {@link #update updated}. */
    public static RateLimiter unlimited() {
        return new RateLimiter(RateLimit.NONE);
    }

    /** Called after each {@link #update}, on the updating thread: the device wakes its throttled queue. */
    public void onUpdate(Runnable listener) {
        this.updateListener = Objects.requireNonNull(listener, "listener");
    }

    /**
     * Takes 1 operation and {@code bytes} bytes and returns 0, or takes nothing and returns the
     * nanoseconds (at least 1) until the request may pass, if no other request takes tokens meanwhile.
     *
     * @param bytes the request's payload, 0 or more
     */
    public long tryConsume(long bytes) {
        if (unlimited) {
            return 0;
        }
        synchronized (this) {
            long now = clock.getAsLong();
            long wait = Math.max(bandwidth == null ? 0 : bandwidth.waitFor(bytes, now), ops == null ? 0 : ops.waitFor(1, now));
            if (wait > 0) {
                if (!blocked) {
                    blocked = true;
                    throttledEvents.incrementAndGet();
                }
                return wait;
            }
            blocked = false;
            if (bandwidth != null) bandwidth.take(bytes);
            if (ops != null) ops.take(1);
            return 0;
        }
    }

    /**
     * Changes the limits. A bucket whose settings are unchanged keeps its tokens; a changed or new
     * one starts full (with its one-time burst), as Firecracker's update does; a switched-off one limits
     * nothing from now on. Then the {@link #onUpdate listener} runs.
     */
    public void update(RateLimit newLimit) {
        Objects.requireNonNull(newLimit, "newLimit");
        synchronized (this) {
            long now = clock.getAsLong();
            bandwidth = bucket(bandwidth, newLimit.bandwidth(), now);
            ops = bucket(ops, newLimit.ops(), now);
            limit = newLimit;
            blocked = false;
            unlimited = bandwidth == null && ops == null;
        }
        updateListener.run();
    }

    private static TokenBucket bucket(TokenBucket current, BucketSpec spec, long now) {
        if (spec == null || !spec.limits()) {
            return null;
        }
        return current != null && current.spec().equals(spec) ? current : new TokenBucket(spec, now);
    }

    /** The limits in force. */
    public synchronized RateLimit limit() {
        return limit;
    }

    /**
     * How many times a request was refused after one had passed (or at the start): each is a stretch
     * of time the queue waited, Firecracker's {@code rate_limiter_throttled_events}.
     */
    public long throttledEvents() {
        return throttledEvents.get();
    }
}
