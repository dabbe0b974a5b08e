package dev.panamax.vmm;

import dev.panamax.virtio.ratelimit.RateLimit;
import java.util.Objects;

/**
 * The VM's entropy device (virtio-rng), as Firecracker's {@code PUT /entropy}: the guest's
 * {@code /dev/hwrng} filled from the host's getrandom.
 *
 * @param rateLimit its rate limit ({@link RateLimit#NONE} for none)
 */
public record EntropyConfig(RateLimit rateLimit) {
    public EntropyConfig {
        Objects.requireNonNull(rateLimit, "rateLimit");
    }
}
