package dev.panamax.virtio.net;

/**
 * A network backend that cannot be opened or can go on no longer (its tap was deleted, passt
 * ended): a sentence naming what failed and what to do.
 */
public final class NetBackendException extends RuntimeException {
    public NetBackendException(String message) {
        super(message);
    }

    public NetBackendException(String message, Throwable cause) {
        super(message, cause);
    }
}
