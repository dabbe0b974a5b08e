package dev.panamax.storage;

import java.io.IOException;

/** A write to an image opened read-only (or one marked corrupt, which is only ever opened read-only). */
public class ReadOnlyImageException extends IOException {
    public ReadOnlyImageException(String message) {
        super(message);
    }
}
