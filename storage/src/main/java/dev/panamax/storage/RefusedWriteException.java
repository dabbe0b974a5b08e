package dev.panamax.storage;

import java.io.IOException;

/**
 * A write an image refuses for what it would write, not for a failing disk: the device answers it
 * with an I/O error and the disk stays as it was.
 */
public final class RefusedWriteException extends IOException {
    public RefusedWriteException(String message) {
        super(message);
    }
}
