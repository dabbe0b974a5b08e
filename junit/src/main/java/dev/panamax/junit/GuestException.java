package dev.panamax.junit;

/**
 * The guest could not be booted or could not run a command: it ended, its server failed, or the
 * agent broke the protocol. Not a command's own failure, which is an {@link ExecResult}.
 */
public final class GuestException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public GuestException(String message) {
        super(message);
    }

    public GuestException(String message, Throwable cause) {
        super(message, cause);
    }
}
