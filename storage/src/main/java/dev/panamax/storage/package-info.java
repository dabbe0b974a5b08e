/**
 * Disk images behind one block-backend interface: the format-independent types every format and
 * every image operation share (the backend, the host file, extents, errors, creation options,
 * check reports), and the raw format. Formats live in subpackages; operations that dispatch over
 * formats live in {@code dev.panamax.storage.image}, above them.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.storage;
