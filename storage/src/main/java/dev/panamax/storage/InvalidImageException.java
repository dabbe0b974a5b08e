package dev.panamax.storage;

import java.io.IOException;

/**
 * An image whose on-disk structures are invalid or unsupported: the message names the image, the
 * structure and the offending value, so a user can tell a damaged file from a bug.
 */
public class InvalidImageException extends IOException {
    public InvalidImageException(String message) {
        super(message);
    }

    public InvalidImageException(String message, Throwable cause) {
        super(message, cause);
    }
}
