package dev.panamax.virtio.rng;

import dev.panamax.sys.SyscallProfile;
import dev.panamax.sys.HostRandom;
import dev.panamax.sys.NativeCallException;
import dev.panamax.virtio.DescriptorChain;
import dev.panamax.virtio.VirtQueue;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.virtio.ratelimit.RateLimiter;
import java.io.UncheckedIOException;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The entropy device (VIRTIO 1.x, 5.4, device type 4): one request queue, no configuration space, no
 * feature bits of its own. Each chain the driver posts is device-writable buffers, which the device
 * fills with the host kernel's random bytes ({@link HostRandom}: getrandom), straight into guest
 * memory, and returns with the length it filled.
 *
 * <p>Guest values: a chain with any device-readable buffer breaks the specification's rule (the
 * driver MUST NOT place driver-readable buffers in the queue) and fails the device (DEVICE_NEEDS_RESET),
 * as does a host whose random source fails; a chain longer than {@link #MAX_REQUEST_BYTES} gets that
 * many bytes (the specification lets a device fill less than the whole buffer), so one request
 * cannot keep the queue's thread, or the limiter's budget, for long.
 *
 * <p>Each request passes the device's {@link RateLimiter} first (1 operation, the bytes it will get),
 * with Firecracker's semantics: one it refuses stays on the ring and the queue waits for the tokens.
 */
public final class VirtioRng extends VirtioDevice {
    public static final int DEVICE_TYPE = 4;
    public static final int DEFAULT_QUEUE_SIZE = 256;
    public static final int QUEUE_COUNT = 1;
    /** The most bytes one request is given: Linux's hwrng asks for at most a page at a time. */
    public static final int MAX_REQUEST_BYTES = 64 * 1024;

    private final RateLimiter limiter;
    private final AtomicLong bytesGiven = new AtomicLong();
    private final AtomicLong requests = new AtomicLong();

    /**
     * @param id      names the device in logs and thread names
     * @param limiter its rate limiter ({@link RateLimiter#unlimited()} for none)
     */
    public VirtioRng(String id, int queueSize, RateLimiter limiter) {
        super("virtio-rng (" + id + ")", DEVICE_TYPE, 0, QUEUE_COUNT, queueSize, 0);
        this.limiter = Objects.requireNonNull(limiter, "limiter");
        limiter.onUpdate(this::wakeQueues); // a queue waiting under the old limit looks again under the new one
    }

    /** The device's rate limiter: {@link RateLimiter#update} changes its limits while the guest runs. */
    public RateLimiter rateLimiter() {
        return limiter;
    }

    /** Random bytes given to the guest so far. */
    public long bytesGiven() {
        return bytesGiven.get();
    }

    /** Requests answered so far. */
    public long requests() {
        return requests.get();
    }

    @Override
    protected RateLimiter rateLimiter(VirtQueue queue) {
        return limiter;
    }

    /** The bytes the request will be given: its writable length, capped. */
    @Override
    protected long requestBytes(VirtQueue queue, DescriptorChain chain) {
        return Math.min(chain.writableLength(), MAX_REQUEST_BYTES);
    }

    @Override
    protected int handle(VirtQueue queue, DescriptorChain chain) {
        if (chain.readableLength() > 0) {
            throw new VirtioProtocolException("queue " + queue.index() + ": request at descriptor " + chain.head() + " has "
                    + chain.readableLength() + " device-readable bytes; the entropy queue takes device-writable buffers only");
        }
        long wanted = requestBytes(queue, chain);
        long filled = 0;
        try {
            for (int i = chain.readableCount(); i < chain.count() && filled < wanted; i++) {
                long n = Math.min(chain.length(i), wanted - filled);
                HostRandom.fill(memory().slice(chain.address(i), n));
                filled += n;
            }
        } catch (NativeCallException | UncheckedIOException e) {
            fail("the host's random source failed: " + e.getMessage());
            return 0;
        }
        bytesGiven.addAndGet(filled);
        requests.incrementAndGet();
        return (int) filled;
    }

    @Override
    protected SyscallProfile ioThreadProfile() {
        return SyscallProfile.RNG;
    }
}
