/**
 * PCI bus 0 behind a host bridge (configuration mechanism #1), BAR placement, and MSI-X.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.devices.pci;
