package dev.panamax.cli;

/**
 * A failure caused by the user's input (a missing file, a bad value): printed as one sentence, no
 * stack trace, and the command exits with {@link Panamax#EXIT_USAGE}.
 */
public class UserError extends RuntimeException {
    public UserError(String message) {
        super(message);
    }

    public UserError(String message, Throwable cause) {
        super(message, cause);
    }
}
