package dev.panamax.storage.image;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Points a qcow2 image at a different backing file. Safe mode first copies into the image every range
 * it does not store itself and where the old and new backing files differ, so the image reads the same
 * afterwards. Unsafe mode only rewrites the name: for a backing file that was moved or renamed.
 */
public final class ImageRebase {
    private static final int CHUNK = 1 << 20;

    private ImageRebase() {}

    /**
     * @param newBacking name to record (relative to the image's directory, or absolute); null removes
     *                   the backing file (safe mode then copies all of the old chain into the image)
     */
    public static void rebase(Path imagePath, String newBacking, ImageFormat newFormat, boolean unsafe) throws IOException {
        ImageFormat format = newFormat;
        if (newBacking != null) {
            Path resolved = Qcow2Image.resolveBacking(imagePath, newBacking);
            if (!Files.exists(resolved)) {
                throw new java.nio.file.NoSuchFileException(resolved.toString(), null, "new backing file does not exist");
            }
            if (format == null) format = Images.probe(resolved);
        }
        if (unsafe) {
            try (Qcow2Image image = Qcow2Image.open(imagePath, true, null, false)) {
                image.setBackingFile(newBacking, format);
            }
            return;
        }
        ImageFormat fmt = format;
        BlockBackend opened = Images.open(imagePath, Images.OpenOptions.readWrite().withFormat(ImageFormat.QCOW2));
        try (Qcow2Image image = (Qcow2Image) opened;
                BlockBackend target = newBacking == null ? null : Images.open(
                        Qcow2Image.resolveBacking(imagePath, newBacking), Images.OpenOptions.readOnly().withFormat(fmt))) {
            BlockBackend old = image.backing();
            long size = image.size();
            ByteBuffer a = ByteBuffer.allocate(CHUNK), b = ByteBuffer.allocate(CHUNK);
            for (long pos = 0; pos < size; ) {
                Extent e = image.extent(pos, size - pos);
                if (e.kind() == Extent.Kind.UNALLOCATED) {
                    for (long p = e.offset(); p < e.end(); p += CHUNK) {
                        int n = (int) Math.min(CHUNK, e.end() - p);
                        readOrZero(old, p, a, n);
                        readOrZero(target, p, b, n);
                        // Copy only the clusters that differ, so the image grows no more than needed.
                        int unit = image.clusterSize();
                        for (int at = 0; at < n; ) {
                            int len = (int) Math.min(n - at, unit - (p + at) % unit);
                            if (!Arrays.equals(a.array(), at, at + len, b.array(), at, at + len)) {
                                image.write(p + at, ByteBuffer.wrap(a.array(), at, len));
                            }
                            at += len;
                        }
                    }
                }
                pos = e.end();
            }
            image.flush();
            image.setBackingFile(newBacking, fmt);
        }
    }

    private static void readOrZero(BlockBackend disk, long offset, ByteBuffer buf, int n) throws IOException {
        buf.clear();
        Arrays.fill(buf.array(), 0, n, (byte) 0);
        if (disk == null || offset >= disk.size()) return;
        buf.limit((int) Math.min(n, disk.size() - offset));
        disk.read(offset, buf);
    }
}
