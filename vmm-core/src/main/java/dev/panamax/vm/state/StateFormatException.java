package dev.panamax.vm.state;

/**
 * Saved state that cannot be restored: truncated, garbled, from another format version, or not
 * matching the VM it is restored into. The message is a sentence for the user; a restore that
 * throws it leaves no guest running.
 */
public final class StateFormatException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public StateFormatException(String message) {
        super(message);
    }

    public StateFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
