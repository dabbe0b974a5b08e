package dev.panamax.storage.image;

import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.ForeignFormat;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.RawImage;
import dev.panamax.storage.qcow2.Qcow2Image;
import dev.panamax.storage.vdi.VdiImage;
import dev.panamax.storage.vhd.VhdImage;
import dev.panamax.storage.vhdx.VhdxImage;
import dev.panamax.storage.vmdk.VmdkImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Locale;
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
     * @param salvage     read-only: damage a format would refuse at open is confined to the blocks it
     *                    concerns, whose reads then fail with a {@link dev.panamax.storage.DamagedRangeException}
     *                    (for {@code convert --salvage})
     */
    public record OpenOptions(boolean writable, ImageFormat format, boolean openBacking, boolean durable, boolean lock,
            boolean salvage) {
        public OpenOptions(boolean writable, ImageFormat format, boolean openBacking, boolean durable, boolean lock) {
            this(writable, format, openBacking, durable, lock, false);
        }

        public OpenOptions {
            if (salvage && writable) throw new IllegalArgumentException("salvage opens are read-only");
        }

        public OpenOptions withSalvage(boolean on) {
            return new OpenOptions(writable, format, openBacking, durable, lock, on);
        }

        public static OpenOptions readOnly() {
            return new OpenOptions(false, null, true, true, false);
        }

        public static OpenOptions readWrite() {
            return new OpenOptions(true, null, true, true, false);
        }

        public OpenOptions withFormat(ImageFormat f) {
            return new OpenOptions(writable, f, openBacking, durable, lock, salvage);
        }

        public OpenOptions withoutBacking() {
            return new OpenOptions(writable, format, false, durable, lock, salvage);
        }

        public OpenOptions withoutSync() {
            return new OpenOptions(writable, format, openBacking, false, lock, salvage);
        }

        public OpenOptions withLock() {
            return new OpenOptions(writable, format, openBacking, durable, true, salvage);
        }
    }

    /**
     * Opens an image and, unless told not to, its backing chain. A format not given is {@linkplain
     * #probe probed}: a file in a format Panamax cannot read is refused, and so is a backing file in one.
     */
    public static BlockBackend open(Path path, OpenOptions options) throws IOException {
        return open(path, options, null, new HashSet<>(), 0);
    }

    /** @param overlay the image whose backing file {@code path} is, or null for the image asked for */
    private static BlockBackend open(Path path, OpenOptions options, Path overlay, Set<Path> chain, int depth) throws IOException {
        if (!Files.exists(path)) {
            if (depth == 0) throw new NoSuchFileException(path.toString(), null, "image file does not exist");
            throw new InvalidImageException("backing file " + path + " does not exist (it may have been moved or deleted;"
                    + " point the image at its new location with 'panamax image rebase -u -b NEW-PATH IMAGE')");
        }
        if (depth > MAX_CHAIN_DEPTH) {
            throw new InvalidImageException(path + ": backing chain is deeper than " + MAX_CHAIN_DEPTH + " images");
        }
        FileKind.requireImageFile(path, overlay == null ? path.toString() : "backing file " + path + " of " + overlay);
        Path real = path.toRealPath();
        if (!chain.add(real)) {
            throw new InvalidImageException(path + ": backing chain loops back to " + real
                    + "; an image cannot be its own backing file");
        }
        boolean detected = options.format() == null;
        ImageFormat format = detected ? probe(path, overlay) : options.format();
        ImageFile file = ImageFile.open(path, options.writable());
        file.setDurable(options.durable());
        try {
            if (options.lock()) {
                file.lock();
            }
            return switch (format) {
                case RAW -> detected && options.writable() ? RawImage.openDetected(file, SIGNATURE_GUARD) : RawImage.open(file);
                case VHD -> VhdImage.open(file, options.salvage());
                case VMDK -> VmdkImage.open(file);
                case VDI -> VdiImage.open(file);
                case VHDX -> VhdxImage.open(file);
                case QCOW2 -> Qcow2Image.open(file, !options.openBacking() ? null
                        : (backingPath, backingFormat) -> open(backingPath,
                                new OpenOptions(false, backingFormat, true, true, false, options.salvage()), path, chain, depth + 1), false);
            };
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /**
     * Detects an image's format from its contents, as qemu-img does: the qcow2 header, the VHD footer
     * (or its copy at the start), a VMDK sparse header or descriptor, the VDI signature, the VHDX file
     * identifier, else raw, but only where no signature of a format Panamax cannot read (QED, LUKS, ...: {@link
     * ForeignFormat}) matches; such a file is refused.
     *
     * @throws InvalidImageException naming the format the file is in, when Panamax cannot read it;
     *     an explicit format ({@link OpenOptions#withFormat}) skips the probe, so raw reads any file as raw
     */
    public static ImageFormat probe(Path path) throws IOException {
        return probe(path, null);
    }

    /** {@link #probe(Path)}; a refusal names {@code overlay} as the image whose backing file {@code path} is, when not null. */
    private static ImageFormat probe(Path path, Path overlay) throws IOException {
        FileKind.requireImageFile(path, overlay == null ? path.toString() : "backing file " + path + " of " + overlay);
        try (ImageFile f = ImageFile.open(path, false)) {
            long size = f.size();
            if (size == 0) return ImageFormat.RAW;
            ByteBuffer head = ByteBuffer.allocate(Signatures.HEAD_BYTES);
            f.readZeroPadded(0, head);
            ByteBuffer tail = ByteBuffer.allocate((int) Math.min(Signatures.TAIL_BYTES, size));
            f.readFully(size - tail.capacity(), tail, "image trailer");
            ForeignFormat foreign = foreignFormat(head, tail);
            if (foreign != null) throw new InvalidImageException(refusal(path, overlay, foreign));
            ImageFormat readable = readableFormat(head, tail);
            return readable != null ? readable : ImageFormat.RAW;
        }
    }

    /** The format other than raw that a file's first {@link Signatures#HEAD_BYTES} and last (up to) {@link Signatures#TAIL_BYTES} say, or null. */
    private static ImageFormat readableFormat(ByteBuffer head, ByteBuffer tail) {
        if (Signatures.isVmdk(head)) return ImageFormat.VMDK;
        if (Signatures.isVdi(head)) return ImageFormat.VDI;
        if (Signatures.isVhdx(head)) return ImageFormat.VHDX;
        if (head.getInt(0) == 0x514649fb && Signatures.atStart(head) == null) return ImageFormat.QCOW2; // not qcow version 1
        if (VhdImage.isCookie(head.array())) return ImageFormat.VHD;
        if (tail.capacity() >= 512 && VhdImage.isCookie(tail.array())) return ImageFormat.VHD;
        return null;
    }

    /** The foreign format such a head and tail say, or null; the start's signatures come first, as in QEMU. */
    private static ForeignFormat foreignFormat(ByteBuffer head, ByteBuffer tail) {
        if (Signatures.isVmdk(head) || Signatures.isVdi(head) || Signatures.isVhdx(head)) return null; // these come first, as they did when refused
        ForeignFormat atStart = Signatures.atStart(head);
        if (atStart != null) return atStart;
        if (head.getInt(0) == 0x514649fb || VhdImage.isCookie(head.array())) return null; // a readable format's own
        return Signatures.atEnd(tail);
    }

    /** Keeps a writable raw disk whose format was probed from being written into one the probe would take it for. */
    private static final RawImage.SignatureGuard SIGNATURE_GUARD = new RawImage.SignatureGuard(Signatures.HEAD_BYTES, Signatures.TAIL_BYTES,
            (head, tail) -> {
                ImageFormat readable = readableFormat(head, tail);
                if (readable != null) return "a " + readable.name().toLowerCase(Locale.ROOT) + " image";
                ForeignFormat foreign = foreignFormat(head, tail);
                return foreign == null ? null : foreign.description();
            });

    /** Why a file in a foreign format is not opened, and how to get an image Panamax reads. */
    private static String refusal(Path path, Path overlay, ForeignFormat format) {
        String name = path.getFileName().toString();
        int dot = name.lastIndexOf('.');
        Path copy = path.resolveSibling((dot > 0 ? name.substring(0, dot) : name) + ".qcow2");
        if (copy.equals(path)) copy = path.resolveSibling(name + "-converted.qcow2");
        String what = (overlay == null ? path : "backing file " + path + " of " + overlay) + " is " + format.description()
                + ", which Panamax cannot read yet";
        String convert = format == ForeignFormat.LUKS
                ? "decrypt it to qcow2 with qemu-img convert (its passphrase given as a secret object)"
                : "convert it with 'qemu-img convert -f " + format.id() + " -O qcow2 " + path + " " + copy + "'";
        String then = overlay == null ? " first" : ", then point " + overlay + " at the copy with 'panamax image rebase -u -b "
                + copy.toAbsolutePath() + " " + overlay + "'";
        String raw = format == ForeignFormat.LUKS ? "; if the guest decrypts it itself, give the image's format as raw" : "";
        return what + "; " + convert + then + raw;
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
            case VMDK -> VmdkImage.create(path, size);
            case VDI -> VdiImage.create(path, size, o.vhdFixed());
            case VHDX -> throw new ImageRequestException("Panamax reads VHDX images but does not create them; use raw, qcow2,"
                    + " vhd, vmdk or vdi");
            case QCOW2 -> Qcow2Image.create(path, o.withSize(size).withBacking(o.backingFile(), backingFormat));
        }
    }
}
