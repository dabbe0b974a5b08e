package dev.panamax.boot;

/** The kernel, initrd or command line cannot be booted as asked; the message says why in one sentence. */
public final class BootException extends RuntimeException {
    public BootException(String message) {
        super(message);
    }

    public BootException(String message, Throwable cause) {
        super(message, cause);
    }
}
