/**
 * The VDI image format (VirtualBox): dynamic and static images.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.storage.vdi;
