package dev.panamax.storage.image;

import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.AllocationMap;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.DamagedRangeException;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.Qcow2Compression;
import dev.panamax.storage.qcow2.Qcow2Image;
import dev.panamax.storage.vmdk.VmdkImage;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Copies a disk (through its whole backing chain) into a new image of any format. Ranges that read
 * as zeros are not written, so the output stays sparse; with {@code compress} every qcow2 cluster is
 * compressed (zlib or zstd, as the output's compression type says).
 */
public final class ImageConverter {
    private static final int CHUNK = 2 << 20;

    /** Told how far the copy is, in bytes of the virtual disk. */
    @FunctionalInterface
    public interface Progress {
        void update(long done, long total);
    }

    /**
     * @param sync fsync the output once it is complete (qemu-img convert does not, by default)
     * @param sourceFormat the source's format, or null to probe it
     */
    public record Options(ImageFormat format, int clusterSize, boolean compress, boolean vhdFixed, boolean sync,
            ImageFormat sourceFormat, Qcow2Compression compression, boolean extendedL2, boolean salvage) {
        public static Options of(ImageFormat format) {
            return new Options(format, 65536, false, false, true, null, Qcow2Compression.ZLIB, false, false);
        }

        /**
         * Read what can be read: a range of the source that cannot be read or decoded becomes zeros in
         * the output and is listed in {@link Result#damaged()}, instead of failing the conversion.
         */
        public Options withSalvage(boolean on) {
            return new Options(format, clusterSize, compress, vhdFixed, sync, sourceFormat, compression, extendedL2, on);
        }

        /** qcow2 output: its compression type, used by {@code compress}. */
        public Options withCompression(Qcow2Compression c) {
            return new Options(format, clusterSize, compress, vhdFixed, sync, sourceFormat, c, extendedL2, salvage);
        }

        /** qcow2 output: extended L2 entries (subclusters). */
        public Options withExtendedL2(boolean on) {
            return new Options(format, clusterSize, compress, vhdFixed, sync, sourceFormat, compression, on, salvage);
        }

        public Options withCompress(boolean c) {
            return new Options(format, clusterSize, c, vhdFixed, sync, sourceFormat, compression, extendedL2, salvage);
        }

        public Options withClusterSize(int c) {
            return new Options(format, c, compress, vhdFixed, sync, sourceFormat, compression, extendedL2, salvage);
        }

        public Options withVhdFixed(boolean f) {
            return new Options(format, clusterSize, compress, f, sync, sourceFormat, compression, extendedL2, salvage);
        }

        public Options withSync(boolean s) {
            return new Options(format, clusterSize, compress, vhdFixed, s, sourceFormat, compression, extendedL2, salvage);
        }

        public Options withSourceFormat(ImageFormat f) {
            return new Options(format, clusterSize, compress, vhdFixed, sync, f, compression, extendedL2, salvage);
        }
    }

    /** A range of the source that could not be read: zeros in the output. */
    public record Damage(long offset, long length, String reason) {
        public long end() {
            return offset + length;
        }
    }

    /** What a conversion could not copy: nothing unless {@link Options#salvage()}; ranges in order, neighbours with one reason merged. */
    public record Result(List<Damage> damaged) {
        public long bytesLost() {
            long n = 0;
            for (Damage d : damaged) n += d.length();
            return n;
        }
    }

    private ImageConverter() {}

    public static Result convert(Path source, Path target, Options o, Progress progress) throws IOException {
        if (o.compress() && o.format() != ImageFormat.QCOW2) {
            throw new ImageRequestException("compression is only available for qcow2 output");
        }
        if (o.format() != ImageFormat.QCOW2 && (o.compression() != Qcow2Compression.ZLIB || o.extendedL2())) {
            throw new ImageRequestException("compression_type and extended_l2 are qcow2 options; the output is "
                    + o.format().id());
        }
        if (Files.exists(target) && Files.isSameFile(source, target)) {
            throw new ImageRequestException("source and target are the same file: " + source);
        }
        List<Damage> damaged = new ArrayList<>();
        try (BlockBackend src = Images.open(source, Images.OpenOptions.readOnly().withFormat(o.sourceFormat())
                .withSalvage(o.salvage()))) {
            Images.create(target, CreateOptions.of(o.format(), src.size()).withClusterSize(o.clusterSize())
                    .withVhdFixed(o.vhdFixed()).withCompression(o.compression()).withExtendedL2(o.extendedL2()));
            // The output is useless until complete, so the ordering fsyncs that keep a live image
            // consistent are skipped; one fsync at the end makes it durable.
            try (BlockBackend dst = Images.open(target,
                    Images.OpenOptions.readWrite().withFormat(o.format()).withoutSync())) {
                if (dst.size() < src.size()) {
                    throw new IllegalStateException("target is smaller than the source: " + dst.size());
                }
                copy(src, dst, o, progress, o.salvage() ? damaged : null);
            }
            if (o.sync()) ImageFile.syncFile(target);
        }
        return new Result(List.copyOf(damaged));
    }

    /** @param damaged where salvage records what it could not read, or null to fail on the first error */
    private static void copy(BlockBackend src, BlockBackend dst, Options o, Progress progress, List<Damage> damaged)
            throws IOException {
        long size = src.size();
        // Zero detection works in units the target can leave unallocated without read-modify-write.
        int unit = dst instanceof Qcow2Image q ? q.clusterSize()
                : dst instanceof VmdkImage v ? Math.max(4096, v.grainSize()) : 4096;
        int chunk = Math.max(CHUNK, unit);
        // Direct memory: file reads and writes need no bounce copy, and zero detection is vectorized.
        ByteBuffer buf = ByteBuffer.allocateDirect(chunk);
        MemorySegment data = MemorySegment.ofBuffer(buf);
        long lastReport = -1;
        for (long pos = 0; pos < size; ) {
            AllocationMap.Entry e;
            try {
                e = AllocationMap.resolve(src, pos, size - pos);
            } catch (IOException ex) {
                if (damaged == null) throw ex;
                if (ex instanceof DamagedRangeException d && d.offset() <= pos && pos < d.end()) {
                    long end = Math.min(d.end(), size);
                    record(damaged, pos, end - pos, d.reason());
                    pos = end;
                    continue;
                }
                // Damage without a range of its own: let the reads below find out which parts of a chunk fail.
                e = new AllocationMap.Entry(pos, Math.min(size - pos, chunk - pos % unit), Extent.Kind.DATA, 0);
            }
            long end = e.end();
            if (e.kind() == Extent.Kind.DATA) {
                // Chunks start on unit boundaries so that compressed clusters and zero units line up.
                long start = pos;
                while (start < end) {
                    long chunkStart = start - start % unit;
                    int n = (int) Math.min(chunk, Math.min(end, size) - chunkStart);
                    long alignedEnd = Math.min(size, (chunkStart + n + unit - 1) / unit * unit);
                    n = (int) (alignedEnd - chunkStart);
                    buf.clear().limit(n);
                    if (damaged == null) {
                        src.read(chunkStart, buf);
                    } else {
                        readSalvaging(src, chunkStart, buf, data, 0, n, damaged);
                    }
                    writeNonZero(dst, o, buf, data, chunkStart, n, unit);
                    start = chunkStart + n;
                }
                end = Math.max(end, start);
            }
            pos = end;
            if (progress != null && (pos - lastReport >= (64 << 20) || pos >= size)) {
                progress.update(Math.min(pos, size), size);
                lastReport = pos;
            }
        }
    }

    /** The smallest piece a read error without a range is narrowed down to: a page, as file systems fail. */
    private static final int SALVAGE_UNIT = 4096;

    /**
     * Fills {@code buf[from, to)} from the source at {@code base + from}; what cannot be read becomes
     * zeros and is recorded. A {@link DamagedRangeException} names its range, which is zeroed whole;
     * any other read error is narrowed down by halves to {@link #SALVAGE_UNIT}-byte pieces.
     */
    private static void readSalvaging(BlockBackend src, long base, ByteBuffer buf, MemorySegment data, int from, int to,
            List<Damage> damaged) throws IOException {
        int pos = from;
        while (pos < to) {
            try {
                src.read(base + pos, buf.duplicate().limit(to).position(pos));
                return;
            } catch (DamagedRangeException d) {
                long a = Math.max(d.offset(), base + pos), b = Math.min(d.end(), base + to);
                if (a >= b) { // names nothing of what was asked: no better than an error without a range
                    narrowDown(src, base, buf, data, pos, to, damaged, d);
                    return;
                }
                if (a > base + pos) readSalvaging(src, base, buf, data, pos, (int) (a - base), damaged);
                data.asSlice(a - base, b - a).fill((byte) 0);
                record(damaged, a, b - a, d.reason());
                pos = (int) (b - base);
            } catch (IOException e) {
                narrowDown(src, base, buf, data, pos, to, damaged, e);
                return;
            }
        }
    }

    private static void narrowDown(BlockBackend src, long base, ByteBuffer buf, MemorySegment data, int from, int to,
            List<Damage> damaged, IOException e) throws IOException {
        if (to - from <= SALVAGE_UNIT) {
            data.asSlice(from, to - from).fill((byte) 0);
            record(damaged, base + from, to - from, e.getMessage() == null ? e.toString() : e.getMessage());
            return;
        }
        int mid = (from + (to - from) / 2) / SALVAGE_UNIT * SALVAGE_UNIT;
        if (mid <= from) mid = from + SALVAGE_UNIT;
        readSalvaging(src, base, buf, data, from, mid, damaged);
        readSalvaging(src, base, buf, data, mid, to, damaged);
    }

    /** Adds a damaged range, merged into the previous one when it continues it for the same reason. */
    private static void record(List<Damage> damaged, long offset, long length, String reason) {
        if (!damaged.isEmpty()) {
            Damage last = damaged.getLast();
            if (last.end() == offset && last.reason().equals(reason)) {
                damaged.set(damaged.size() - 1, new Damage(last.offset(), last.length() + length, reason));
                return;
            }
        }
        damaged.add(new Damage(offset, length, reason));
    }

    private static final MemorySegment ZEROS = MemorySegment.ofArray(new byte[2 << 20]);

    /** Writes the units of {@code buf[0, n)} that are not all zeros, merging neighbours into one write. */
    private static void writeNonZero(BlockBackend dst, Options o, ByteBuffer buf, MemorySegment data, long base, int n,
            int unit) throws IOException {
        int runStart = -1;
        for (int off = 0; off < n + unit; off += unit) { // one step past the last unit, whole or not, ends a run
            int len = Math.min(unit, n - off);
            boolean zero = off >= n || MemorySegment.mismatch(data, off, off + len, ZEROS, 0, len) < 0;
            if (!zero && o.compress()) {
                byte[] cluster = new byte[unit];
                buf.get(off, cluster, 0, len);
                ((Qcow2Image) dst).writeCompressed(base + off, cluster, len);
                continue;
            }
            if (!zero && runStart < 0) runStart = off;
            if (zero && runStart >= 0) {
                dst.write(base + runStart, buf.slice(runStart, Math.min(off, n) - runStart));
                runStart = -1;
            }
        }
    }
}
