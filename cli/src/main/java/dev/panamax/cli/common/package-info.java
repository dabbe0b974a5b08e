/**
 * What the {@code panamax} command and its subcommand packages share: {@link
 * dev.panamax.cli.common.UserError}, a failure of the user's input. A leaf, so that the subcommand
 * packages need not reach back into the top command's.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.cli.common;
