package dev.panamax.storage;

/**
 * Metadata found to be wrong while using an image (as opposed to a limit or an unsupported feature).
 * A qcow2 image that meets one during a write is marked corrupt, so nothing writes to it again before
 * it has been checked and repaired.
 */
public class ImageCorruptException extends InvalidImageException {
    public ImageCorruptException(String message) {
        super(message);
    }

    public ImageCorruptException(String message, Throwable cause) {
        super(message, cause);
    }
}
