/**
 * The VMM: the rules a VM's resources follow (shared by the Java API, the JSON config, the REST API
 * and {@code panamax run}) and the configuration the VM is built from. The public {@code
 * dev.panamax.api} is a facade over this package; the control plane uses it too.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.vmm;
