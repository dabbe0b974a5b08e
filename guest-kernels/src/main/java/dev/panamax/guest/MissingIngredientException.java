package dev.panamax.guest;

/**
 * Something a build or the rig needs is not on this machine and could not be fetched or installed.
 * The message is one sentence that names the Debian package and the command that installs it, so
 * callers print it as it is, without a stack trace.
 */
public final class MissingIngredientException extends RuntimeException {
    public MissingIngredientException(String message) {
        super(message);
    }

    public MissingIngredientException(String message, Throwable cause) {
        super(message, cause);
    }
}
