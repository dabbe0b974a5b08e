package dev.panamax.storage.image;

import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.RawImage;
import dev.panamax.storage.qcow2.Qcow2Image;
import dev.panamax.storage.vhd.VhdImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

/** Entry point of the library: opening images of any format (with their backing chains) and creating them. */
public final class Images {
    /** Deeper chains are almost certainly a mistake or a hostile image; QEMU's limit is similar. */
    public static final int MAX_CHAIN_DEPTH = 1000;

    private Images() {}

    /**
     * How to open an image.
     *
     * @param writable    open for writing
     * @param format      null to detect it from the file contents
     * @param openBacking open the backing chain (needed to read data; not for info, check, rebase)
     * @param durable     false skips every fsync (see {@link ImageFile#setDurable}); for new outputs only
     * @param lock        lock the image file (see {@link ImageFile#lock}), as a VM's disk must be
     */
    public record OpenOptions(boolean writable, ImageFormat format, boolean openBacking, boolean durable, boolean lock) {
        public static OpenOptions readOnly() {
            return new OpenOptions(false, null, true, true, false);
        }

        public static OpenOptions readWrite() {
            return new OpenOptions(true, null, true, true, false);
        }

        public OpenOptions withFormat(ImageFormat f) {
            return new OpenOptions(writable, f, openBacking, durable, lock);
        }

        public OpenOptions withoutBacking() {
            return new OpenOptions(writable, format, false, durable, lock);
        }

        public OpenOptions withoutSync() {
            return new OpenOptions(writable, format, openBacking, false, lock);
        }

        public OpenOptions withLock() {
            return new OpenOptions(writable, format, openBacking, durable, true);
        }
    }

    public static BlockBackend open(Path path, OpenOptions options) throws IOException {
        return open(path, options, new HashSet<>(), 0);
    }

    private static BlockBackend open(Path path, OpenOptions options, Set<Path> chain, int depth) throws IOException {
        if (!Files.exists(path)) {
            if (depth == 0) throw new NoSuchFileException(path.toString(), null, "image file does not exist");
            throw new InvalidImageException("backing file " + path + " does not exist (it may have been moved or deleted;"
                    + " point the image at its new location with 'panamax image rebase -u -b NEW-PATH IMAGE')");
        }
        if (depth > MAX_CHAIN_DEPTH) {
            throw new InvalidImageException(path + ": backing chain is deeper than " + MAX_CHAIN_DEPTH + " images");
        }
        Path real = path.toRealPath();
        if (!chain.add(real)) {
            throw new InvalidImageException(path + ": backing chain loops back to " + real
                    + "; an image cannot be its own backing file");
        }
        ImageFormat format = options.format() != null ? options.format() : probe(path);
        ImageFile file = ImageFile.open(path, options.writable());
        file.setDurable(options.durable());
        try {
            if (options.lock()) {
                file.lock();
            }
            return switch (format) {
                case RAW -> RawImage.open(file);
                case VHD -> VhdImage.open(file);
                case QCOW2 -> Qcow2Image.open(file, !options.openBacking() ? null
                        : (backingPath, backingFormat) -> open(backingPath,
                                new OpenOptions(false, backingFormat, true, true, false), chain, depth + 1), false);
            };
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /** Detects the format from magic numbers: qcow2 header, VHD footer (or its copy at the start), else raw. */
    public static ImageFormat probe(Path path) throws IOException {
        try (ImageFile f = ImageFile.open(path, false)) {
            long size = f.size();
            ByteBuffer head = ByteBuffer.allocate((int) Math.min(8, size));
            f.readFully(0, head, "image header");
            if (size >= 4 && head.getInt(0) == 0x514649fb) return ImageFormat.QCOW2;
            if (size >= 8 && VhdImage.isCookie(head.array())) return ImageFormat.VHD;
            if (size >= 512) {
                ByteBuffer tail = ByteBuffer.allocate(8);
                f.readFully(size - 512, tail, "VHD footer");
                if (VhdImage.isCookie(tail.array())) return ImageFormat.VHD;
            }
            return ImageFormat.RAW;
        }
    }

    /**
     * Creates an image. A backing file must exist; its format is detected when not given, and a size
     * of -1 means "the backing file's size".
     */
    public static void create(Path path, CreateOptions o) throws IOException {
        long size = o.size();
        ImageFormat backingFormat = o.backingFormat();
        if (o.backingFile() != null) {
            if (o.format() != ImageFormat.QCOW2) {
                throw new ImageRequestException("only qcow2 images can have a backing file");
            }
            Path resolved = Qcow2Image.resolveBacking(path, o.backingFile());
            try (BlockBackend b = open(resolved, OpenOptions.readOnly().withFormat(backingFormat))) {
                if (backingFormat == null) backingFormat = b.format();
                if (size < 0) size = b.size();
            } catch (NoSuchFileException e) {
                throw new NoSuchFileException(resolved.toString(), null, "backing file does not exist");
            }
        }
        if (size < 0) throw new ImageRequestException("an image size is needed (no backing file to take it from)");
        switch (o.format()) {
            case RAW -> RawImage.create(path, size).close();
            case VHD -> VhdImage.create(path, size, o.vhdFixed());
            case QCOW2 -> Qcow2Image.create(path, o.withSize(size).withBacking(o.backingFile(), backingFormat));
        }
    }
}
