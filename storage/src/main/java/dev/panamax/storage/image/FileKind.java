package dev.panamax.storage.image;

import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;

/**
 * What a path is, from its inode alone (stat, following symbolic links): an image can live in a
 * regular file or on a block device; anything else is refused by type before it is opened, since
 * opening a FIFO blocks until a writer comes and a character device has no size.
 *
 * @param identity the file's device and inode, the same for every name (hard or symbolic link) of one file
 * @param refusal  why the file cannot hold an image ("a directory, not an image file"), or null when it can
 */
record FileKind(String identity, String refusal) {
    private static final int S_IFMT = 0170000, S_IFIFO = 0010000, S_IFCHR = 0020000, S_IFDIR = 0040000,
            S_IFBLK = 0060000, S_IFREG = 0100000, S_IFSOCK = 0140000;

    /** @throws java.nio.file.NoSuchFileException when the path (or a symbolic link's target) does not exist */
    static FileKind of(Path path) throws IOException {
        Map<String, Object> a = Files.readAttributes(path, "unix:mode,dev,ino");
        int mode = (Integer) a.get("mode");
        String identity = a.get("dev") + ":" + a.get("ino");
        String refusal = switch (mode & S_IFMT) {
            case S_IFREG, S_IFBLK -> null;
            case S_IFDIR -> "a directory, not an image file";
            case S_IFIFO -> "a FIFO (named pipe), not an image file; it is not opened, as reading one waits for a writer";
            case S_IFCHR -> "a character device, not an image file: it has no size (/dev/zero would read as an empty"
                    + " disk, a terminal would wait for input); it is not opened";
            case S_IFSOCK -> "a socket, not an image file";
            default -> "not a regular file or block device (file mode 0" + Integer.toOctalString(mode) + ")";
        };
        return new FileKind(identity, refusal);
    }

    /**
     * Refuses a path that cannot hold an image, before anything opens it.
     *
     * @param what how a sentence names the path ("backing file X of Y")
     */
    static void requireImageFile(Path path, String what) throws IOException {
        FileKind kind;
        try {
            kind = of(path);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(path.toString(), null, "image file does not exist");
        }
        if (kind.refusal != null) throw new InvalidImageException(what + " is " + kind.refusal);
    }

    boolean isImageFile() {
        return refusal == null;
    }
}
