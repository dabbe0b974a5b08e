/**
 * The x86 PC platform as Panamax lays it out: the guest-physical memory map ({@link
 * dev.panamax.x86.PhysicalLayout}, its e820 entries), and CPU modes and page tables for bare guest
 * programs. Boot code, devices and transports all place themselves by this one map.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.x86;
