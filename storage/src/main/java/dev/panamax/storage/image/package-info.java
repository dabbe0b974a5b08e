/**
 * Operations on disk images of any format: opening (with the backing chain), creating, checking
 * and repairing, converting, rebasing, committing, and what {@code info} shows. The one package that
 * knows every format; the formats themselves know only {@code dev.panamax.storage}.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.storage.image;
