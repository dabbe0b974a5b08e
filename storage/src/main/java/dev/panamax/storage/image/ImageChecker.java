package dev.panamax.storage.image;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CheckReport;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.qcow2.Qcow2Check;
import dev.panamax.storage.qcow2.Qcow2Image;
import dev.panamax.storage.vmdk.VmdkImage;
import java.io.IOException;
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
}
