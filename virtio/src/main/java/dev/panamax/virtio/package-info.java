/**
 * The transport-independent virtio device core: split virtqueues, feature and status handling, one I/O thread per queue.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.virtio;
