/**
 * The FUSE server of virtio-fs (device type 26), in process: {@link dev.panamax.virtio.fs.FuseServer}
 * serves a host directory to the guest's FUSE client as virtiofsd does, every name resolved as one
 * component relative to an {@code O_PATH} handle, so that nothing the guest sends reaches a host
 * file outside the share. The requests are decoded and checked in one place ({@code FuseRequest}).
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.virtio.fs;
