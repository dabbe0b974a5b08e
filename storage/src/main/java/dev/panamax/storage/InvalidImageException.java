package dev.panamax.storage;

import java.io.IOException;

/**
 * An image whose on-disk structures are invalid or unsupported: the message names the image, the
 * structure and the offending value, so a user can tell a damaged file from a bug.
 *
 * <p>It carries no stack trace: the message says where the file is wrong, and a hostile or badly
 * damaged image can raise one per table entry (4 million for a qcow2 L1 table), where walking the
 * stack each time took most of {@code check}'s time.
 */
public class InvalidImageException extends IOException {
    public InvalidImageException(String message) {
        super(message);
    }

    public InvalidImageException(String message, Throwable cause) {
        super(message, cause);
    }

    @Override
    public final Throwable fillInStackTrace() {
        return this;
    }
}
