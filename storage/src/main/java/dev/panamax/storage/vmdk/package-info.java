/**
 * The VMDK image format (VMware): monolithic sparse, stream-optimized and flat layouts.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.storage.vmdk;
