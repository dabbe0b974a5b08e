/**
 * The FUSE server of virtio-fs (device type 26), in process: {@link dev.panamax.virtio.fs.FuseServer}
 * serves a host directory to the guest's FUSE client as virtiofsd does, every name resolved as one
 * component relative to an {@code O_PATH} handle ({@link dev.panamax.sys.PathHandle}), so that
 * nothing the guest sends reaches a host file outside the share.
 *
 * <p>The parts: {@code Fuse} holds the protocol's numbers and struct layouts (checked against
 * {@code <linux/fuse.h>} by a test); {@code FuseRequest} decodes and checks one request, the one
 * place guest values are validated; {@code FuseReply} writes a reply without passing the guest's
 * buffer; {@code FuseError} is an answer with an errno. A virtio device built on this gathers a
 * request's readable descriptors into one native segment, offers the writable ones (or a bounce
 * buffer) as the reply segment, calls {@link dev.panamax.virtio.fs.FuseServer#handle} and returns
 * the reply length as the used length; FORGET and BATCH_FORGET (the hiprio queue) answer nothing.
 * {@link dev.panamax.virtio.fs.VirtioFs} is that device (type 26), with bounce buffers on both sides.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.virtio.fs;
