/**
 * The libc bindings (FFM): owned file descriptors, eventfd, epoll, memory mappings, sparse files,
 * TAP devices, Unix stream sockets and a file server's host calls ({@link dev.panamax.sys.PathHandle},
 * {@link dev.panamax.sys.OpenFile}), each a typed wrapper over {@link dev.panamax.sys.Libc}. With
 * {@code dev.panamax.kvm}, the only native calls in Panamax. Setup failures are the unchecked
 * {@link dev.panamax.sys.NativeCallException}; transfers on data-path descriptors (disk images, taps,
 * Unix streams) throw the checked {@link dev.panamax.sys.NativeIoException}. eventfd and epoll
 * failures stay unchecked: with a valid descriptor they cannot happen, so one is a bug.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.sys;
