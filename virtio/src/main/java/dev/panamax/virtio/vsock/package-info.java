/**
 * virtio-vsock (VIRTIO 1.x, 5.10): stream sockets between the guest and host programs, with
 * Firecracker's host side: a Unix socket where host programs ask for a guest port with
 * {@code CONNECT <port>}, and Unix sockets {@code <uds_path>_<port>} where host programs take the
 * guest's connections to host port {@code port}.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.virtio.vsock;
