/**
 * Firecracker's rate limiters: token buckets of bytes and of operations that hold a device's queue
 * to a rate, on a clock that tests replace.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.virtio.ratelimit;
