/**
 * virtio-rng, the entropy device (VIRTIO 1.x, 5.4): the guest's {@code /dev/hwrng} filled from the
 * host's {@code getrandom}, under Firecracker's rate limiter.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.virtio.rng;
