package dev.panamax.storage.image;

import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * Merges an overlay into its backing file: every range the overlay stores (data or explicit zeros) is
 * written to the backing file, which is then flushed; only after that is the overlay emptied, so a
 * crash in between leaves both images reading the same data.
 */
public final class ImageCommit {
    private static final int CHUNK = 2 << 20;

    private ImageCommit() {}

    /** Returns the number of bytes copied into the backing file. */
    public static long commit(Path overlayPath, ImageConverter.Progress progress) throws IOException {
        Path backingPath;
        ImageFormat backingFormat;
        try (BlockBackend probe = Images.open(overlayPath, Images.OpenOptions.readOnly().withoutBacking())) {
            if (!(probe instanceof Qcow2Image q) || q.backingFileName() == null) {
                throw new ImageRequestException(overlayPath + " has no backing file to commit into");
            }
            backingPath = Qcow2Image.resolveBacking(overlayPath, q.backingFileName());
            backingFormat = q.backingFormatName() == null ? null : ImageFormat.parse(q.backingFormatName());
        }
        long copied = 0;
        try (Qcow2Image overlay = Qcow2Image.open(overlayPath, true, null, false);
                BlockBackend backing = Images.open(backingPath, Images.OpenOptions.readWrite().withFormat(backingFormat))) {
            long size = overlay.size();
            for (long pos = 0; pos < size; ) { // refuse before writing anything
                Extent e = overlay.extent(pos, size - pos);
                if (e.kind() != Extent.Kind.UNALLOCATED && e.end() > backing.size()) {
                    throw new ImageRequestException("the overlay stores data beyond the end of its backing file ("
                            + backing.size() + " bytes); grow the backing file first");
                }
                pos = e.end();
            }
            ByteBuffer buf = ByteBuffer.allocate(CHUNK);
            for (long pos = 0; pos < size; ) {
                Extent e = overlay.extent(pos, size - pos);
                if (e.kind() == Extent.Kind.ZERO) {
                    backing.writeZeroes(e.offset(), e.length());
                } else if (e.kind() == Extent.Kind.DATA) {
                    for (long p = e.offset(); p < e.end(); ) {
                        int n = (int) Math.min(CHUNK, e.end() - p);
                        buf.clear().limit(n);
                        overlay.read(p, buf);
                        buf.flip();
                        backing.write(p, buf);
                        p += n;
                        copied += n;
                    }
                }
                pos = e.end();
                if (progress != null) progress.update(pos, size);
            }
            backing.flush();
            overlay.discard(0, size); // opened without its backing file, so this makes everything unallocated
            overlay.flush();
        }
        return copied;
    }
}
