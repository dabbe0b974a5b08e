package dev.panamax.storage;

/**
 * What a caller asked of an image operation cannot be done as asked: an option out of range (a
 * cluster size, a size, a qcow2 version), a format that lacks the feature (compression, a backing
 * file), a name that is taken. The message says what to ask instead. An image file that is
 * malformed is an {@link InvalidImageException} instead; any other {@link IllegalArgumentException}
 * from storage is a caller's bug.
 */
public final class ImageRequestException extends IllegalArgumentException {
    public ImageRequestException(String message) {
        super(message);
    }
}
