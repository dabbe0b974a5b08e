package dev.panamax.cli.common;

/**
 * A failure caused by the user's input (a missing file, a bad value): printed as one sentence, no
 * stack trace, and the command exits with {@code panamax}'s usage status, 2.
 */
public class UserError extends RuntimeException {
    public UserError(String message) {
        super(message);
    }

    public UserError(String message, Throwable cause) {
        super(message, cause);
    }
}
