/**
 * virtio-net and its backends: a TAP device or passt's user-mode network.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.virtio.net;
