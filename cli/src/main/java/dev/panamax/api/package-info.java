/**
 * Panamax's public Java API: {@link dev.panamax.api.VirtualMachine} and the types in its
 * signatures. Programs that embed Panamax use this package only. Every other package of Panamax
 * ({@code dev.panamax.vm}, {@code dev.panamax.sys}, {@code dev.panamax.devices},
 * {@code dev.panamax.control}, ...) is internal: public for Panamax's own modules, not for users,
 * and free to change in any release.
 */
package dev.panamax.api;
