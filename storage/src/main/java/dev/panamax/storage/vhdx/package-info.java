/**
 * The VHDX image format (Hyper-V): dynamic and fixed images, read-only.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.storage.vhdx;
