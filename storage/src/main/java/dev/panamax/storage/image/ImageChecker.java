package dev.panamax.storage.image;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CheckReport;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.qcow2.Qcow2Check;
import dev.panamax.storage.qcow2.Qcow2Image;
import dev.panamax.storage.qcow2.Qcow2Rebuild;
import dev.panamax.storage.vmdk.VmdkImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

/** {@code check} and {@code repair} for every format, including problems in the backing chain. */
public final class ImageChecker {
    private ImageChecker() {}

    /** Checks an image without changing it. An image too damaged to open is reported as one corruption. */
    public static CheckReport check(Path path) throws IOException {
        return check(path, null);
    }

    /**
     * {@link #check(Path)} with the image's format, or null to probe it. A file in a format Panamax
     * cannot read is refused ({@link InvalidImageException}), not reported as damaged.
     */
    public static CheckReport check(Path path, ImageFormat format) throws IOException {
        ImageFormat f = format != null ? format : Images.probe(path);
        CheckReport report;
        try (BlockBackend disk = Images.open(path, Images.OpenOptions.readOnly().withoutBacking().withFormat(f))) {
            report = disk instanceof Qcow2Image q ? Qcow2Check.check(q) : new CheckReport();
            if (disk instanceof VmdkImage v) v.check(report::corruption);
        } catch (InvalidImageException e) {
            report = new CheckReport();
            report.corruption(e.getMessage());
            return report;
        }
        checkChain(path, f, report);
        return report;
    }

    /** Problems of the backing chain (missing or moved files, loops, unreadable images), as corruptions. */
    static void checkChain(Path path, ImageFormat format, CheckReport report) throws IOException {
        try {
            Images.open(path, Images.OpenOptions.readOnly().withFormat(format)).close(); // opening the whole chain is the check
        } catch (InvalidImageException e) {
            report.corruption("backing chain: " + e.getMessage());
        }
    }

    /** The outcome of a repair: what check found before, and what remains after. */
    public record RepairResult(CheckReport before, CheckReport after) {}

    /**
     * Repairs what can be repaired without guessing: leaked clusters, wrong refcounts and COPIED flags
     * (qcow2). Chain problems are reported in {@code after}; fix them with {@link ImageRebase}.
     */
    public static RepairResult repair(Path path) throws IOException {
        ImageFormat format = Images.probe(path);
        if (format != ImageFormat.QCOW2) {
            CheckReport r = check(path, format);
            return new RepairResult(r, r);
        }
        if (!Files.isWritable(path)) throw new IOException(path + ": no permission to write to the image");
        Qcow2Check.RepairResult r;
        try (Qcow2Image q = Qcow2Image.open(path, true, null, true)) {
            r = Qcow2Check.repair(q);
        }
        checkChain(path, ImageFormat.QCOW2, r.before());
        checkChain(path, ImageFormat.QCOW2, r.after());
        return new RepairResult(r.before(), r.after());
    }

    /**
     * Where a rebuild writes: with {@code output} the original stays as it is and the result goes
     * there; otherwise the original is first copied to {@code backup} (default {@code IMAGE.damaged})
     * and rebuilt in place. Orphaned L2 tables' data goes to {@code orphansDir} when given.
     */
    public record RebuildOptions(Path output, Path backup, Path orphansDir) {}

    /** What a rebuild found, where the result and the original are, and a fresh check of the result. */
    public record RebuildResult(Qcow2Rebuild.Result tables, Path rebuilt, Path original, CheckReport after) {}

    /**
     * Rebuilds a qcow2 image whose L1 table or refcount structures are destroyed (see {@link
     * Qcow2Rebuild} for the rule), then its refcounts from the references. The damaged original is
     * never changed: the work is done on a copy.
     */
    public static RebuildResult rebuildTables(Path path, RebuildOptions o) throws IOException {
        if (!Files.exists(path)) throw new java.nio.file.NoSuchFileException(path.toString(), null, "image file does not exist");
        ImageFormat format = Images.probe(path);
        if (format != ImageFormat.QCOW2) {
            throw new ImageRequestException("rebuilding tables is for qcow2 images; " + path + " is " + format.id());
        }
        if (o.output() != null && o.backup() != null) {
            throw new ImageRequestException("give either an output file or a backup path, not both");
        }
        Path work = o.output() != null ? o.output() : path;
        Path original = o.output() != null ? path : o.backup() != null ? o.backup() : path.resolveSibling(path.getFileName() + ".damaged");
        Path copy = o.output() != null ? o.output() : original;
        if (Files.exists(copy)) {
            throw new java.nio.file.FileAlreadyExistsException(copy.toString(), null,
                    "already exists; remove it or name another " + (o.output() != null ? "output" : "backup"));
        }
        if (o.output() == null && !Files.isWritable(path)) throw new IOException(path + ": no permission to write to the image");
        copySparse(path, copy);
        Qcow2Rebuild.Result tables;
        CheckReport after;
        try {
            tables = Qcow2Rebuild.rebuild(work, o.orphansDir());
            try (Qcow2Image q = Qcow2Image.open(work, true, null, true)) {
                after = Qcow2Check.repair(q).after();
            }
        } catch (IOException | RuntimeException e) {
            // An output that is only a copy of the damaged image would pass for a result; a backup stays.
            if (o.output() != null) Files.deleteIfExists(o.output());
            throw e;
        }
        checkChain(work, ImageFormat.QCOW2, after);
        return new RebuildResult(tables, work, original, after);
    }

    /** Copies a file's data extents (holes stay holes) and syncs the copy; refuses to overwrite. */
    private static void copySparse(Path from, Path to) throws IOException {
        try (ImageFile in = ImageFile.open(from, false)) {
            Files.createFile(to);
            try (ImageFile out = ImageFile.open(to, true)) {
                long size = in.size();
                ByteBuffer buf = ByteBuffer.allocate(1 << 20);
                for (long pos = in.nextData(0); pos < size; ) {
                    long hole = in.nextHole(pos);
                    for (long p = pos; p < hole; ) {
                        buf.clear().limit((int) Math.min(buf.capacity(), hole - p));
                        in.readFully(p, buf, "data");
                        buf.flip();
                        out.write(p, buf);
                        p += buf.limit();
                    }
                    pos = in.nextData(hole);
                }
                out.setSize(size);
                out.sync();
            }
        }
    }
}
