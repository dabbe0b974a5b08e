package dev.panamax.storage.vmdk;

import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageCorruptException;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * A hosted sparse extent ("KDMV"): a 512-byte header, the embedded descriptor, a grain directory (GD)
 * of sector offsets of grain tables (GT), each GT holding the sector offsets of its grains. With the
 * redundant-GT flag, a second GD and set of GTs mirror the first. Compressed extents (streamOptimized)
 * point each GT entry at a grain marker: the grain's first sector (u64), the compressed length (u32)
 * and a zlib stream. All fields are little-endian; every offset counts 512-byte sectors.
 */
final class VmdkSparse {
    static final int SECTOR = 512;
    static final int MAGIC = 0x564d444b; // "KDMV" read little-endian
    static final int FLAG_NL_DETECT = 1, FLAG_RGD = 1 << 1, FLAG_ZERO_GRAIN = 1 << 2;
    static final int FLAG_COMPRESS = 1 << 16, FLAG_MARKER = 1 << 17;
    static final long GD_AT_END = -1L;
    static final int MARKER_END_OF_STREAM = 0, MARKER_FOOTER = 3;
    /** Grains of 512 bytes to 32 MiB: VMware writes 64 KiB; more would only make single reads huge. */
    static final long MAX_GRAIN_SECTORS = 1 << 16;
    /** The format's grain tables have 512 entries; QEMU refuses more. */
    static final int MAX_GTES = 512;
    private static final int GT_CACHE = 256;
    /** The most grain directory entries Panamax holds (16 MiB): 128 TiB of 64 KiB grains, far more for a valid image. */
    static final int MAX_GD_ENTRIES = 4 << 20;

    /** The header fields Panamax uses. */
    record Header(int version, int flags, long capacity, long grainSectors, long descriptorOffset, long descriptorSize,
            int gtes, long rgdOffset, long gdOffset, long overhead, int compressAlgorithm) {

        static Header parse(ByteBuffer b) {
            b.order(ByteOrder.LITTLE_ENDIAN);
            return new Header(b.getInt(4), b.getInt(8), b.getLong(12), b.getLong(20), b.getLong(28), b.getLong(36),
                    b.getInt(44), b.getLong(48), b.getLong(56), b.getLong(64), b.getShort(77) & 0xffff);
        }

        boolean compressed() {
            return (flags & FLAG_COMPRESS) != 0;
        }
    }

    private final ImageFile file;
    private final String name;
    final Header header;
    final int grainBytes;
    private final long capacityBytes;
    private final int[] gd;
    /** The redundant directory, or null (no redundant tables, or a compressed extent). */
    private final int[] rgd;
    private final Map<Integer, int[]> gtCache = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Integer, int[]> eldest) {
            return size() > GT_CACHE;
        }
    };
    /** Where the next grain goes: the end of the file, rounded up to a sector. */
    private long fileEnd;
    /** The last grain decompressed (compressed extents read a grain in pieces). */
    private long cachedGrain = -1;
    private byte[] cachedData;

    private VmdkSparse(ImageFile file, Header header, int[] gd, int[] rgd, long fileSize) {
        this.file = file;
        this.name = file.path().toString();
        this.header = header;
        this.grainBytes = (int) (header.grainSectors * SECTOR);
        this.capacityBytes = header.capacity * SECTOR;
        this.gd = gd;
        this.rgd = rgd;
        this.fileEnd = (fileSize + SECTOR - 1) / SECTOR * SECTOR;
    }

    static boolean isMagic(ByteBuffer head) {
        return head.limit() >= 4 && head.duplicate().order(ByteOrder.LITTLE_ENDIAN).getInt(0) == MAGIC;
    }

    /** Reads and checks the header (or, for a stream whose directory is at the end, the footer) and the directories. */
    static VmdkSparse open(ImageFile file) throws IOException {
        String name = file.path().toString();
        long fileSize = file.size();
        ByteBuffer hb = ByteBuffer.allocate(SECTOR);
        file.readFully(0, hb, "VMDK sparse header");
        if (!isMagic(hb)) throw new InvalidImageException(name + ": no VMDK sparse header (magic 'KDMV')");
        Header h = Header.parse(hb);
        checkNewlines(hb, h, name);
        if (h.gdOffset == GD_AT_END) {
            // A stream written in one pass: the header with the directory's place is repeated in a footer,
            // framed by a footer marker before it and an end-of-stream marker after it.
            if ((h.flags & FLAG_MARKER) == 0 || fileSize < 4 * SECTOR) {
                throw new InvalidImageException(name + ": VMDK header puts the grain directory at the end of the file,"
                        + " but the file has no footer");
            }
            ByteBuffer fb = ByteBuffer.allocate(3 * SECTOR).order(ByteOrder.LITTLE_ENDIAN);
            file.readFully(fileSize - 3 * SECTOR, fb, "VMDK footer");
            if (fb.getInt(12) != MARKER_FOOTER || fb.getInt(8) != 0 || fb.getInt(SECTOR) != MAGIC
                    || fb.getLong(2 * SECTOR) != 0 || fb.getInt(2 * SECTOR + 8) != 0 || fb.getInt(2 * SECTOR + 12) != MARKER_END_OF_STREAM) {
                throw new InvalidImageException(name + ": VMDK footer (the last 1536 bytes: footer marker, header copy,"
                        + " end-of-stream marker) is missing or damaged; the image is truncated");
            }
            h = Header.parse(fb.slice(SECTOR, SECTOR));
            if (h.gdOffset == GD_AT_END) {
                throw new InvalidImageException(name + ": VMDK footer does not say where the grain directory is");
            }
        }
        validate(h, name, fileSize);
        long gtSpan = h.grainSectors * h.gtes;
        long gdEntries = (h.capacity + gtSpan - 1) / gtSpan;
        if (gdEntries > MAX_GD_ENTRIES) {
            throw new InvalidImageException(name + ": VMDK grain directory would have " + gdEntries + " entries ("
                    + h.capacity + " sectors in grains of " + h.grainSectors + " sectors, " + h.gtes + " per table), more than"
                    + " Panamax maps (" + MAX_GD_ENTRIES + ")");
        }
        int[] gd = readDirectory(file, h.gdOffset, gdEntries, h.gtes, fileSize, "grain directory");
        int[] rgd = null;
        if ((h.flags & FLAG_RGD) != 0 && !h.compressed() && h.rgdOffset != 0) {
            rgd = readDirectory(file, h.rgdOffset, gdEntries, h.gtes, fileSize, "redundant grain directory");
        }
        return new VmdkSparse(file, h, gd, rgd, fileSize);
    }

    /** With newline detection on, the four check characters show whether a text-mode transfer mangled the file. */
    private static void checkNewlines(ByteBuffer hb, Header h, String name) throws InvalidImageException {
        if ((h.flags & FLAG_NL_DETECT) != 0
                && (hb.get(73) != '\n' || hb.get(74) != ' ' || hb.get(75) != '\r' || hb.get(76) != '\n')) {
            throw new InvalidImageException(name + ": VMDK header's newline check characters are wrong; the file was"
                    + " damaged, probably by a transfer in text mode (copy it again in binary mode)");
        }
    }

    private static void validate(Header h, String name, long fileSize) throws InvalidImageException {
        if (h.version < 1 || h.version > 3) {
            throw new InvalidImageException(name + ": VMDK sparse extent version " + Integer.toUnsignedString(h.version)
                    + " is not supported (1 to 3)");
        }
        if (h.capacity < 0 || h.capacity > VmdkDescriptor.MAX_SECTORS) {
            throw new InvalidImageException(name + ": VMDK capacity of " + h.capacity + " sectors is invalid (0 to "
                    + VmdkDescriptor.MAX_SECTORS + ", 64 TiB)");
        }
        if (h.grainSectors < 1 || h.grainSectors > MAX_GRAIN_SECTORS || Long.bitCount(h.grainSectors) != 1) {
            throw new InvalidImageException(name + ": VMDK grain size of " + h.grainSectors + " sectors is invalid (a power"
                    + " of two from 1 to " + MAX_GRAIN_SECTORS + ")");
        }
        if (h.gtes < 1 || h.gtes > MAX_GTES) {
            throw new InvalidImageException(name + ": VMDK grain tables of " + Integer.toUnsignedString(h.gtes)
                    + " entries are invalid (1 to " + MAX_GTES + ")");
        }
        long sectors = fileSize / SECTOR;
        if (h.overhead < 0 || h.overhead > sectors) {
            throw new InvalidImageException(name + ": VMDK metadata size of " + h.overhead + " sectors exceeds the file ("
                    + fileSize + " bytes); the image is truncated");
        }
        if (h.compressed() && h.compressAlgorithm != 1) {
            throw new InvalidImageException(name + ": VMDK compression algorithm " + h.compressAlgorithm
                    + " is not supported (only 1, deflate)");
        }
        if (h.descriptorSize != 0 && (h.descriptorSize < 0 || h.descriptorOffset < 1 || h.descriptorSize > VmdkDescriptor.MAX_BYTES / SECTOR
                || h.descriptorOffset > sectors - h.descriptorSize)) {
            throw new InvalidImageException(name + ": VMDK embedded descriptor (" + h.descriptorSize + " sectors at sector "
                    + h.descriptorOffset + ") lies outside the file or exceeds " + VmdkDescriptor.MAX_BYTES + " bytes");
        }
    }

    /** A directory of {@code entries} GT offsets, each checked to name a whole table inside the file. */
    private static int[] readDirectory(ImageFile file, long sector, long entries, int gtes, long fileSize, String what)
            throws IOException {
        String name = file.path().toString();
        long bytes = 4L * entries;
        if (sector < 1 || sector > fileSize / SECTOR || bytes > fileSize - sector * SECTOR) {
            throw new InvalidImageException(name + ": VMDK " + what + " (" + entries + " entries at sector " + sector
                    + ") lies outside the file (" + fileSize + " bytes)");
        }
        ByteBuffer b = ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
        file.readFully(sector * SECTOR, b, "VMDK " + what);
        int[] dir = new int[(int) entries];
        b.flip().asIntBuffer().get(dir);
        long gtBytes = 4L * gtes;
        for (int i = 0; i < dir.length; i++) {
            long at = Integer.toUnsignedLong(dir[i]) * SECTOR;
            if (dir[i] != 0 && (at > fileSize - gtBytes)) {
                throw new InvalidImageException(name + ": VMDK " + what + " entry " + i + " puts a grain table at offset "
                        + at + ", past the end of the file (" + fileSize + " bytes)");
            }
        }
        return dir;
    }

    /** The embedded descriptor, or null when the extent has none. */
    VmdkDescriptor descriptor() throws IOException {
        if (header.descriptorSize == 0) return null;
        byte[] text = new byte[(int) (header.descriptorSize * SECTOR)];
        file.readFully(header.descriptorOffset * SECTOR, ByteBuffer.wrap(text), "VMDK embedded descriptor");
        return VmdkDescriptor.parse(text, text.length, name + " (embedded descriptor)");
    }

    long capacityBytes() {
        return capacityBytes;
    }

    private int[] table(int gtIndex) throws IOException {
        int[] gt = gtCache.get(gtIndex);
        if (gt == null) {
            ByteBuffer b = ByteBuffer.allocate(4 * header.gtes).order(ByteOrder.LITTLE_ENDIAN);
            file.readFully(Integer.toUnsignedLong(gd[gtIndex]) * SECTOR, b, "VMDK grain table " + gtIndex);
            gt = new int[header.gtes];
            b.flip().asIntBuffer().get(gt);
            gtCache.put(gtIndex, gt);
        }
        return gt;
    }

    /** A grain's table entry: 0 unallocated, 1 a zero grain (with the zero-grain flag), else its sector. */
    private long entry(long grain) throws IOException {
        int gtIndex = (int) (grain / header.gtes);
        if (gd[gtIndex] == 0) return 0;
        long e = Integer.toUnsignedLong(table(gtIndex)[(int) (grain % header.gtes)]);
        if (e == 0 || isZeroGrain(e)) return e;
        long at = e * SECTOR;
        long fileSize = fileEnd;
        if (e < header.overhead || (header.compressed() ? at > fileSize - 12 : at > fileSize - grainBytes)) {
            throw new ImageCorruptException(name + ": VMDK grain table entry for grain " + grain + " points at offset " + at
                    + ", outside the data area (" + header.overhead * SECTOR + " to " + fileSize + " bytes)");
        }
        return e;
    }

    private boolean isZeroGrain(long e) {
        return e == 1 && (header.flags & FLAG_ZERO_GRAIN) != 0;
    }

    /**
     * Checks every grain table entry (and, for compressed grains, every marker and stream) and that the
     * redundant tables match the primary ones; each problem is one sentence to {@code problems}.
     */
    void check(java.util.function.Consumer<String> problems) throws IOException {
        for (int t = 0; t < gd.length; t++) {
            if (gd[t] == 0) continue;
            int[] gt = table(t);
            int[] copy = null;
            if (rgd != null && rgd[t] != 0) {
                ByteBuffer b = ByteBuffer.allocate(4 * header.gtes).order(ByteOrder.LITTLE_ENDIAN);
                file.readFully(Integer.toUnsignedLong(rgd[t]) * SECTOR, b, "VMDK redundant grain table " + t);
                copy = new int[header.gtes];
                b.flip().asIntBuffer().get(copy);
            }
            for (int i = 0; i < header.gtes; i++) {
                long grain = (long) t * header.gtes + i;
                if (grain * grainBytes >= capacityBytes) break;
                if (copy != null && copy[i] != gt[i]) {
                    problems.accept(name + ": VMDK grain table " + t + " entry " + i + " (" + Integer.toUnsignedString(gt[i])
                            + ") differs from its redundant copy (" + Integer.toUnsignedString(copy[i]) + ")");
                }
                try {
                    long e = entry(grain);
                    if (header.compressed() && e > 1) decompressedGrain(grain, e); // the marker and the whole zlib stream
                } catch (ImageCorruptException ex) {
                    problems.accept(ex.getMessage());
                }
            }
        }
    }

    /** Fills {@code dst} from disk offset {@code offset}; the range lies within one grain. */
    void readInGrain(long offset, ByteBuffer dst) throws IOException {
        long grain = offset / grainBytes;
        int in = (int) (offset % grainBytes);
        long e = entry(grain);
        if (e == 0 || isZeroGrain(e)) {
            while (dst.hasRemaining()) dst.put((byte) 0);
        } else if (header.compressed()) {
            byte[] data = decompressedGrain(grain, e);
            dst.put(data, in, dst.remaining());
        } else {
            file.readFully(e * SECTOR + in, dst, "VMDK grain " + grain);
        }
    }

    /** The compressed length from a grain's marker, checked against the grain and the file. */
    private int checkMarker(long grain, long sector) throws IOException {
        long at = sector * SECTOR;
        ByteBuffer marker = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        file.readFully(at, marker, "VMDK grain marker");
        long lba = marker.getLong(0);
        long size = Integer.toUnsignedLong(marker.getInt(8));
        // Deflate never grows data by more than a few bytes per 16 KiB block; a grain marker saying more is damaged.
        long limit = grainBytes + grainBytes / 8 + 1024;
        if (lba != grain * header.grainSectors || size == 0 || size > limit || size > file.size() - at - 12) {
            throw new ImageCorruptException(name + ": VMDK compressed grain " + grain + " at offset " + at
                    + " has a bad marker (sector " + lba + ", " + size + " bytes)");
        }
        return (int) size;
    }

    private byte[] decompressedGrain(long grain, long sector) throws IOException {
        if (cachedGrain == grain) return cachedData;
        long at = sector * SECTOR;
        byte[] compressed = new byte[checkMarker(grain, sector)];
        file.readFully(at + 12, ByteBuffer.wrap(compressed), "VMDK compressed grain");
        byte[] out = new byte[grainBytes];
        Inflater inflater = new Inflater();
        try {
            inflater.setInput(compressed);
            int n = 0;
            while (n < out.length && !inflater.finished()) {
                int got = inflater.inflate(out, n, out.length - n);
                if (got == 0 && (inflater.needsInput() || inflater.needsDictionary())) break;
                n += got;
            }
            // A grain inflates to at most a grain; the last one of a disk may be shorter (the rest reads as zeros).
            if (!inflater.finished()) {
                throw new ImageCorruptException(name + ": VMDK compressed grain " + grain + " at offset " + at
                        + (n == out.length ? " inflates to more than a grain" : " is truncated"));
            }
        } catch (DataFormatException ex) {
            throw new ImageCorruptException(name + ": VMDK compressed grain " + grain + " at offset " + at
                    + " is not a valid zlib stream (" + ex.getMessage() + ")");
        } finally {
            inflater.end();
        }
        cachedGrain = grain;
        cachedData = out;
        return out;
    }

    /** Writes {@code src} at disk offset {@code offset}; the range lies within one grain. */
    void writeInGrain(long offset, ByteBuffer src) throws IOException {
        long grain = offset / grainBytes;
        int in = (int) (offset % grainBytes);
        int gtIndex = (int) (grain / header.gtes);
        if (gd[gtIndex] == 0) {
            throw new InvalidImageException(name + ": VMDK grain table " + gtIndex + " was never allocated; Panamax writes"
                    + " only to images whose grain tables are all in place (as VMware and qemu-img create them)");
        }
        long e = entry(grain);
        if (e == 0 || isZeroGrain(e)) {
            e = allocate(grain);
        }
        file.write(e * SECTOR + in, src);
    }

    /**
     * Appends a grain at the end of the file (zeros: a hole), then points both grain tables at it. The
     * data goes first, so a crash leaves at worst a grain nobody names.
     */
    private long allocate(long grain) throws IOException {
        long start = fileEnd;
        if (start / SECTOR + header.grainSectors > 0xFFFFFFFFL) {
            throw new InvalidImageException(name + ": VMDK file would grow past 2 TiB, the most its grain tables can address");
        }
        file.setSize(start + grainBytes);
        fileEnd = start + grainBytes;
        int sector = (int) (start / SECTOR);
        int gtIndex = (int) (grain / header.gtes);
        int slot = (int) (grain % header.gtes);
        ByteBuffer entry = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, sector);
        file.write(Integer.toUnsignedLong(gd[gtIndex]) * SECTOR + 4L * slot, entry);
        if (rgd != null && rgd[gtIndex] != 0) {
            file.write(Integer.toUnsignedLong(rgd[gtIndex]) * SECTOR + 4L * slot, entry.clear());
        }
        table(gtIndex)[slot] = sector;
        return Integer.toUnsignedLong(sector);
    }

    /** Zeros {@code length} bytes at {@code offset} within one grain: allocated data is zeroed in place. */
    void zeroInGrain(long offset, long length) throws IOException {
        long grain = offset / grainBytes;
        long e = entry(grain);
        if (e == 0 || isZeroGrain(e)) return; // already reads as zeros
        long at = e * SECTOR + offset % grainBytes;
        long first = Math.min((at + SECTOR - 1) / SECTOR * SECTOR, at + length), last = Math.max(first, (at + length) / SECTOR * SECTOR);
        file.write(at, ByteBuffer.allocate((int) (first - at)));
        file.zero(first, last - first);
        file.write(last, ByteBuffer.allocate((int) (at + length - last)));
    }

    private Extent.Kind kind(long grain) throws IOException {
        long e = entry(grain);
        return e == 0 ? Extent.Kind.UNALLOCATED : isZeroGrain(e) ? Extent.Kind.ZERO : Extent.Kind.DATA;
    }

    /** The run of grains from {@code offset} (up to {@code end}) with one allocation state; absent tables are skipped whole. */
    Extent extent(long offset, long end) throws IOException {
        long grain = offset / grainBytes;
        Extent.Kind kind = kind(grain);
        long lastGrain = (end - 1) / grainBytes;
        long g = grain + 1;
        while (g <= lastGrain) {
            int gtIndex = (int) (g / header.gtes);
            if (gd[gtIndex] == 0 && kind == Extent.Kind.UNALLOCATED) {
                g = (gtIndex + 1L) * header.gtes;
            } else if (kind(g) == kind) {
                g++;
            } else {
                break;
            }
        }
        return new Extent(offset, Math.min(g * grainBytes, end) - offset, kind);
    }

    /**
     * Creates an empty monolithicSparse image as qemu-img does: header, descriptor, redundant directory
     * and tables, directory and tables (all tables in place, all entries zero), then grains from the
     * first grain boundary after the metadata.
     */
    static void create(ImageFile file, long sizeBytes, String fileName, int cid) throws IOException {
        long grainSectors = 128;
        int gtes = MAX_GTES;
        long capacity = (sizeBytes + SECTOR - 1) / SECTOR;
        long gtSpan = grainSectors * gtes;
        int gdEntries = (int) ((capacity + gtSpan - 1) / gtSpan); // none for an empty disk, as qemu-img writes it
        long gdSectors = (4L * gdEntries + SECTOR - 1) / SECTOR;
        long gtSectors = 4L * gtes / SECTOR;
        long descriptorOffset = 1, descriptorSectors = 20;
        long rgdOffset = descriptorOffset + descriptorSectors;
        long gdOffset = rgdOffset + gdSectors + gdEntries * gtSectors;
        long metadataEnd = gdOffset + gdSectors + gdEntries * gtSectors;
        long overhead = (metadataEnd + grainSectors - 1) / grainSectors * grainSectors;

        ByteBuffer h = ByteBuffer.allocate(SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        h.putInt(MAGIC).putInt(1).putInt(FLAG_NL_DETECT | FLAG_RGD).putLong(capacity).putLong(grainSectors)
                .putLong(descriptorOffset).putLong(descriptorSectors).putInt(gtes).putLong(rgdOffset).putLong(gdOffset)
                .putLong(overhead).put((byte) 0).put((byte) '\n').put((byte) ' ').put((byte) '\r').put((byte) '\n')
                .putShort((short) 0);
        byte[] descriptor = new byte[(int) (descriptorSectors * SECTOR)];
        byte[] text = VmdkDescriptor.sparse(capacity, fileName, cid).getBytes(StandardCharsets.UTF_8);
        if (text.length > descriptor.length) {
            throw new ImageRequestException("VMDK descriptor for file name '" + fileName + "' does not fit in "
                    + descriptor.length + " bytes; use a shorter name");
        }
        System.arraycopy(text, 0, descriptor, 0, text.length);
        file.setSize(overhead * SECTOR);
        file.write(0, h.clear());
        file.write(descriptorOffset * SECTOR, ByteBuffer.wrap(descriptor));
        for (long dir : new long[] {rgdOffset, gdOffset}) {
            ByteBuffer d = ByteBuffer.allocate((int) (gdSectors * SECTOR)).order(ByteOrder.LITTLE_ENDIAN);
            long firstTable = dir + gdSectors;
            for (int i = 0; i < gdEntries; i++) d.putInt((int) (firstTable + i * gtSectors));
            file.write(dir * SECTOR, d.clear());
            // The tables themselves are zeros: a hole in the file.
        }
    }
}
