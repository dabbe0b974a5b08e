/**
 * The control plane: the REST API on a Unix socket and the JSON config, both clients of the Java API.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.control;
