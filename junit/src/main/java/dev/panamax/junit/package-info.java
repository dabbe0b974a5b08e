/**
 * panamax-junit: JUnit 5 tests with a booted tiny Linux guest. Annotate a class {@link dev.panamax.junit.PanamaxTest},
 * take a {@link dev.panamax.junit.Guest} as a field or parameter, and run commands in it with
 * {@link dev.panamax.junit.Guest#exec}. {@code Guest}, {@code ExecResult}, {@code GuestException}, {@code PanamaxTest}
 * and {@code PanamaxExtension} are the API; the rest is internal ({@code GuestServer} is public only to be started by name).
 */
package dev.panamax.junit;
