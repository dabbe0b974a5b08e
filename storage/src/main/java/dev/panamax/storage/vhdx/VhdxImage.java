package dev.panamax.storage.vhdx;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.ReadOnlyImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * A Hyper-V VHDX image, dynamic or fixed, read-only (MS-VHDX 1.0). The first MiB holds the file
 * identifier ("vhdxfile"), two 4 KiB headers (the valid one with the higher sequence number is current)
 * and two copies of the region table, which places the block allocation table (BAT) and the metadata
 * region anywhere after it, on MiB boundaries. The metadata gives the block size, the virtual disk size
 * and the sector sizes; the BAT has one entry a payload block, with a sector bitmap entry after each
 * chunk of them (used only by differencing images, which Panamax does not read). Every structure is
 * CRC-32C checked or bounds-checked before use; all fields are little-endian.
 */
public final class VhdxImage implements BlockBackend {
    static final int KiB64 = 64 << 10;
    static final long MiB = 1 << 20;
    static final long HEADER_1 = 64 << 10, HEADER_2 = 128 << 10;
    static final int HEADER_BYTES = 4 << 10;
    static final long REGION_TABLE_1 = 192 << 10, REGION_TABLE_2 = 256 << 10;
    static final int REGION_TABLE_BYTES = KiB64;
    static final int MAX_TABLE_ENTRIES = 2047;
    static final long MAX_SIZE = 64L << 40; // the format's limit
    static final int MIN_BLOCK = 1 << 20, MAX_BLOCK = 256 << 20;
    /** The most payload blocks Panamax maps (a 64 MiB table, every entry held in memory): 8 TiB of 1 MiB blocks. */
    static final long MAX_BLOCKS = 8L << 20;
    private static final long SECTORS_PER_CHUNK = 1L << 23; // the sectors one sector bitmap block describes

    static final MsGuid BAT_REGION = MsGuid.parse("2DC27766-F623-4200-9D64-115E9BFD4A08");
    static final MsGuid METADATA_REGION = MsGuid.parse("8B7CA206-4790-4B9A-B8FE-575F050F886E");
    static final MsGuid FILE_PARAMETERS = MsGuid.parse("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
    static final MsGuid VIRTUAL_DISK_SIZE = MsGuid.parse("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
    static final MsGuid PAGE_83_DATA = MsGuid.parse("BECA12AB-B2E6-4523-93EF-C309E000C746");
    static final MsGuid LOGICAL_SECTOR_SIZE = MsGuid.parse("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
    static final MsGuid PHYSICAL_SECTOR_SIZE = MsGuid.parse("CDA348C7-445D-4471-9CC9-E9885251C556");
    static final MsGuid PARENT_LOCATOR = MsGuid.parse("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");

    /** Payload block states (BAT entry bits 0-2). */
    static final int NOT_PRESENT = 0, UNDEFINED = 1, ZERO = 2, UNMAPPED = 3, FULLY_PRESENT = 6, PARTIALLY_PRESENT = 7;
    /** Sector bitmap block states. */
    static final int BITMAP_NOT_PRESENT = 0, BITMAP_PRESENT = 6;
    private static final long RESERVED_BAT_BITS = 0xffff8L; // bits 3-19

    private final ImageFile file;
    private final String name;
    private final long size;
    private final int blockSize;
    private final int logicalSectorSize;
    private final int physicalSectorSize;
    private final boolean fixed;
    /** The payload blocks' BAT entries (the sector bitmap entries left out), each state and file offset. */
    private final long[] payload;
    private boolean closed;

    private VhdxImage(ImageFile file, long size, int blockSize, int logicalSectorSize, int physicalSectorSize, boolean fixed,
            long[] payload) {
        this.file = file;
        this.name = file.path().toString();
        this.size = size;
        this.blockSize = blockSize;
        this.logicalSectorSize = logicalSectorSize;
        this.physicalSectorSize = physicalSectorSize;
        this.fixed = fixed;
        this.payload = payload;
    }

    public static boolean isSignature(ByteBuffer head) {
        byte[] sig = "vhdxfile".getBytes(StandardCharsets.US_ASCII);
        if (head.limit() < sig.length) return false;
        for (int i = 0; i < sig.length; i++) if (head.get(i) != sig[i]) return false;
        return true;
    }

    public static VhdxImage open(Path path, boolean writable) throws IOException {
        ImageFile file = ImageFile.open(path, writable);
        try {
            return open(file);
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /** A range of the file that holds one structure; no two may overlap. */
    private record Region(long start, long end, String what) {}

    /** Takes ownership of {@code file} (closed on failure by the caller). */
    public static VhdxImage open(ImageFile file) throws IOException {
        String name = file.path().toString();
        long fileSize = file.size();
        ByteBuffer id = ByteBuffer.allocate(8);
        file.readZeroPadded(0, id);
        if (!isSignature(id)) throw new InvalidImageException(name + ": no VHDX file identifier ('vhdxfile' at offset 0)");
        if (fileSize < MiB) {
            throw new InvalidImageException(name + ": VHDX file is " + fileSize + " bytes, shorter than its 1 MiB header"
                    + " section; the image is truncated");
        }
        List<Region> regions = new ArrayList<>();
        regions.add(new Region(0, MiB, "the header section"));

        ByteBuffer header = currentHeader(file, name);
        checkLog(file, name, header, regions);
        ByteBuffer table = regionTable(file, name);
        Region bat = null, metadata = null;
        int entries = table.getInt(8);
        for (int i = 0; i < entries; i++) {
            int at = 16 + 32 * i;
            MsGuid guid = MsGuid.read(table, at);
            long offset = table.getLong(at + 16);
            long length = Integer.toUnsignedLong(table.getInt(at + 24));
            boolean required = (table.getInt(at + 28) & 1) != 0;
            String what = guid.equals(BAT_REGION) ? "BAT region" : guid.equals(METADATA_REGION) ? "metadata region"
                    : "region " + guid;
            if (offset < MiB || offset % MiB != 0 || length == 0 || length % MiB != 0) {
                throw new InvalidImageException(name + ": VHDX " + what + " (offset " + Long.toUnsignedString(offset)
                        + ", " + length + " bytes) is misplaced: it must start and end on a MiB boundary after the header section");
            }
            if (offset > fileSize - length) {
                throw new InvalidImageException(name + ": VHDX " + what + " (offset " + offset + ", " + length
                        + " bytes) lies beyond the end of the file (" + fileSize + " bytes); the image is truncated");
            }
            Region r = new Region(offset, offset + length, "the " + what);
            checkOverlap(name, regions, r);
            regions.add(r);
            if (guid.equals(BAT_REGION) || guid.equals(METADATA_REGION)) {
                if (guid.equals(BAT_REGION) ? bat != null : metadata != null) {
                    throw new InvalidImageException(name + ": VHDX region table lists the " + what + " twice");
                }
                if (guid.equals(BAT_REGION)) bat = r;
                else metadata = r;
            } else if (required) {
                throw new InvalidImageException(name + ": VHDX image has a required region " + guid + " that Panamax does not"
                        + " know; it cannot be read safely (convert it with the program that made it)");
            }
        }
        if (bat == null || metadata == null) {
            throw new InvalidImageException(name + ": VHDX region table has no " + (bat == null ? "BAT" : "metadata") + " region");
        }
        Metadata m = Metadata.read(file, name, metadata);
        if (file.isWritable()) {
            throw new ReadOnlyImageException(name + ": VHDX images can only be opened read-only (attach the disk read-only,"
                    + " or convert it to qcow2 with 'panamax image convert' to write to it)");
        }
        long[] payload = readBat(file, name, bat, m, regions);
        return new VhdxImage(file, m.size, m.blockSize, m.logicalSectorSize, m.physicalSectorSize, m.leaveBlocksAllocated,
                payload);
    }

    private static void checkOverlap(String name, List<Region> regions, Region r) throws InvalidImageException {
        for (Region o : regions) {
            if (r.start < o.end && o.start < r.end) {
                throw new InvalidImageException(name + ": VHDX " + r.what.substring(4) + " (offset " + r.start + " to " + r.end
                        + ") overlaps " + o.what + " (offset " + o.start + " to " + o.end + "); the image is corrupt");
            }
        }
    }

    private static boolean crcValid(ByteBuffer b) {
        ByteBuffer copy = ByteBuffer.allocate(b.capacity()).order(ByteOrder.LITTLE_ENDIAN);
        copy.put(0, b, 0, b.capacity()).putInt(4, 0);
        CRC32C crc = new CRC32C();
        crc.update(copy);
        return (int) crc.getValue() == b.getInt(4);
    }

    private static boolean hasSignature(ByteBuffer b, String signature) {
        byte[] s = signature.getBytes(StandardCharsets.US_ASCII);
        for (int i = 0; i < s.length; i++) if (b.get(i) != s[i]) return false;
        return true;
    }

    /** Why a header is not valid, or null when it is. */
    private static String headerProblem(ByteBuffer h) {
        if (!hasSignature(h, "head")) return "no 'head' signature";
        if (!crcValid(h)) return "a bad checksum";
        int version = Short.toUnsignedInt(h.getShort(66));
        if (version != 1) return "version " + version + " (only 1 is defined)";
        return null;
    }

    /** The header in use: of the two valid ones, the one with the higher sequence number. */
    private static ByteBuffer currentHeader(ImageFile file, String name) throws IOException {
        ByteBuffer h1 = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer h2 = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        file.readFully(HEADER_1, h1, "VHDX header 1");
        file.readFully(HEADER_2, h2, "VHDX header 2");
        h1.clear();
        h2.clear();
        String p1 = headerProblem(h1), p2 = headerProblem(h2);
        if (p1 != null && p2 != null) {
            throw new InvalidImageException(name + ": neither VHDX header is valid (header 1 has " + p1 + ", header 2 has " + p2
                    + "); the image is corrupt");
        }
        if (p1 != null) return h2;
        if (p2 != null) return h1;
        int bySequence = Long.compareUnsigned(h1.getLong(8), h2.getLong(8));
        if (bySequence == 0 && !h1.equals(h2)) {
            throw new InvalidImageException(name + ": both VHDX headers carry sequence number " + Long.toUnsignedString(h1.getLong(8))
                    + " but differ, so neither is known to be current; the image is corrupt");
        }
        return bySequence >= 0 ? h1 : h2;
    }

    /**
     * Checks the log the header names, and refuses an image whose log holds entries: they may be
     * metadata updates that never reached their place (a crash, or a writer that keeps its log), and
     * reading without replaying them could give stale data.
     */
    private static void checkLog(ImageFile file, String name, ByteBuffer header, List<Region> regions) throws IOException {
        int logVersion = Short.toUnsignedInt(header.getShort(64));
        long logLength = Integer.toUnsignedLong(header.getInt(68));
        long logOffset = header.getLong(72);
        MsGuid logGuid = MsGuid.read(header, 48);
        if (logVersion != 0) throw new InvalidImageException(name + ": VHDX log version " + logVersion + " is not supported (only 0)");
        if (logLength == 0) return; // no log at all
        if (logLength % MiB != 0 || logOffset < MiB || logOffset % MiB != 0) {
            throw new InvalidImageException(name + ": VHDX log (offset " + Long.toUnsignedString(logOffset) + ", " + logLength
                    + " bytes) is misplaced: it must start and end on a MiB boundary after the header section");
        }
        long fileSize = file.size();
        if (logOffset > fileSize - logLength) {
            throw new InvalidImageException(name + ": VHDX log (offset " + logOffset + ", " + logLength
                    + " bytes) lies beyond the end of the file (" + fileSize + " bytes); the image is truncated");
        }
        Region log = new Region(logOffset, logOffset + logLength, "the log");
        checkOverlap(name, regions, log);
        regions.add(log);
        if (logGuid.equals(MsGuid.ZERO)) return; // no log in use
        // A log entry starts on a 4 KiB boundary with "loge" and carries the header's log GUID at byte 32.
        ByteBuffer chunk = ByteBuffer.allocate((int) MiB).order(ByteOrder.LITTLE_ENDIAN);
        for (long pos = logOffset; pos < logOffset + logLength; pos += MiB) {
            chunk.clear();
            file.readFully(pos, chunk, "VHDX log");
            for (int at = 0; at < MiB; at += 4096) {
                if (chunk.getInt(at) == 0x65676f6c && MsGuid.read(chunk, at + 32).equals(logGuid)) {
                    throw new InvalidImageException(name + ": VHDX image has a log that must be replayed before it can be read"
                            + " (it was not closed cleanly, or its writer keeps a log); replay it with 'qemu-img check -r all "
                            + name + "', or convert it with 'qemu-img convert -f vhdx -O qcow2'");
                }
            }
        }
    }

    /** The first region table copy that is valid (signature, checksum, entry count), else the second. */
    private static ByteBuffer regionTable(ImageFile file, String name) throws IOException {
        String[] problems = new String[2];
        for (int copy = 0; copy < 2; copy++) {
            ByteBuffer t = ByteBuffer.allocate(REGION_TABLE_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            file.readFully(copy == 0 ? REGION_TABLE_1 : REGION_TABLE_2, t, "VHDX region table " + (copy + 1));
            t.clear();
            long entries = Integer.toUnsignedLong(t.getInt(8));
            if (!hasSignature(t, "regi")) problems[copy] = "no 'regi' signature";
            else if (!crcValid(t)) problems[copy] = "a bad checksum";
            else if (entries > MAX_TABLE_ENTRIES) problems[copy] = entries + " entries (at most " + MAX_TABLE_ENTRIES + ")";
            else return t;
        }
        throw new InvalidImageException(name + ": neither VHDX region table is valid (table 1 has " + problems[0]
                + ", table 2 has " + problems[1] + "); the image is corrupt");
    }

    /** The metadata items Panamax uses, checked. */
    private record Metadata(long size, int blockSize, boolean leaveBlocksAllocated, int logicalSectorSize,
            int physicalSectorSize) {

        static Metadata read(ImageFile file, String name, Region region) throws IOException {
            ByteBuffer t = ByteBuffer.allocate(KiB64).order(ByteOrder.LITTLE_ENDIAN);
            file.readFully(region.start, t, "VHDX metadata table");
            t.clear();
            if (!hasSignature(t, "metadata")) {
                throw new InvalidImageException(name + ": VHDX metadata table at offset " + region.start
                        + " has no 'metadata' signature; the image is corrupt");
            }
            int entries = Short.toUnsignedInt(t.getShort(10));
            if (entries > MAX_TABLE_ENTRIES) {
                throw new InvalidImageException(name + ": VHDX metadata table has " + entries + " entries (at most "
                        + MAX_TABLE_ENTRIES + ")");
            }
            long regionLength = region.end - region.start;
            ByteBuffer[] items = new ByteBuffer[6];
            MsGuid[] known = {FILE_PARAMETERS, VIRTUAL_DISK_SIZE, PAGE_83_DATA, LOGICAL_SECTOR_SIZE, PHYSICAL_SECTOR_SIZE,
                PARENT_LOCATOR};
            String[] names = {"file parameters", "virtual disk size", "page 83 data", "logical sector size",
                "physical sector size", "parent locator"};
            int[] lengths = {8, 8, 16, 4, 4, -1};
            List<Region> used = new ArrayList<>();
            for (int i = 0; i < entries; i++) {
                int at = 32 + 32 * i;
                MsGuid guid = MsGuid.read(t, at);
                long offset = Integer.toUnsignedLong(t.getInt(at + 16));
                long length = Integer.toUnsignedLong(t.getInt(at + 20));
                boolean required = (t.getInt(at + 24) & 4) != 0;
                int k = 0;
                while (k < known.length && !known[k].equals(guid)) k++;
                String what = k < known.length ? "metadata item '" + names[k] + "'" : "metadata item " + guid;
                if (length > MiB || (length > 0 && (offset < KiB64 || offset > regionLength - length))
                        || (length == 0 && offset != 0)) {
                    throw new InvalidImageException(name + ": VHDX " + what + " (offset " + offset + ", " + length
                            + " bytes) lies outside the metadata region's data area (from 64 KiB to " + regionLength
                            + " bytes, at most 1 MiB each)");
                }
                if (length > 0) {
                    Region r = new Region(offset, offset + length, "the " + what);
                    checkOverlap(name, used, r);
                    used.add(r);
                }
                if (k == known.length) {
                    if (required) {
                        throw new InvalidImageException(name + ": VHDX image has a required " + what + " that Panamax"
                                + " does not know; it cannot be read safely");
                    }
                    continue;
                }
                if (items[k] != null) throw new InvalidImageException(name + ": VHDX metadata table lists " + what + " twice");
                if (lengths[k] >= 0 && length != lengths[k]) {
                    throw new InvalidImageException(name + ": VHDX " + what + " is " + length + " bytes, not " + lengths[k]);
                }
                if (lengths[k] < 0) {
                    items[k] = ByteBuffer.allocate(0); // the parent locator is not read: its presence is what counts
                    continue;
                }
                items[k] = ByteBuffer.allocate((int) length).order(ByteOrder.LITTLE_ENDIAN);
                file.readFully(region.start + offset, items[k], "VHDX " + what);
                items[k].clear();
            }
            for (int k = 0; k < 5; k++) {
                if (items[k] == null) {
                    throw new InvalidImageException(name + ": VHDX metadata has no " + names[k] + " item; the image is corrupt");
                }
            }
            long blockSize = Integer.toUnsignedLong(items[0].getInt(0));
            int flags = items[0].getInt(4);
            boolean hasParent = (flags & 2) != 0;
            if (hasParent || items[5] != null) {
                throw new InvalidImageException(name + ": VHDX image is a differencing image (it has a parent), which"
                        + " Panamax does not read; merge it into its parent with Hyper-V (Merge-VHD), then use the parent");
            }
            if (blockSize < MIN_BLOCK || blockSize > MAX_BLOCK || Long.bitCount(blockSize) != 1) {
                throw new InvalidImageException(name + ": VHDX block size " + blockSize + " is invalid (a power of two from"
                        + " 1 MiB to 256 MiB)");
            }
            long logical = Integer.toUnsignedLong(items[3].getInt(0));
            long physical = Integer.toUnsignedLong(items[4].getInt(0));
            if (logical != 512 && logical != 4096) {
                throw new InvalidImageException(name + ": VHDX logical sector size " + logical + " is invalid (512 or 4096)");
            }
            if (physical != 512 && physical != 4096) {
                throw new InvalidImageException(name + ": VHDX physical sector size " + physical + " is invalid (512 or 4096)");
            }
            long size = items[1].getLong(0);
            if (size < 0 || size > MAX_SIZE || size % logical != 0) {
                throw new InvalidImageException(name + ": VHDX virtual disk size " + Long.toUnsignedString(size) + " is invalid"
                        + " (a multiple of the " + logical + "-byte logical sector, at most 64 TiB)");
            }
            return new Metadata(size, (int) blockSize, (flags & 1) != 0, (int) logical, (int) physical);
        }
    }

    /** Reads and checks the BAT: each payload block's entry (sector bitmap entries are checked and left out). */
    private static long[] readBat(ImageFile file, String name, Region bat, Metadata m, List<Region> regions) throws IOException {
        long fileSize = file.size();
        long blocks = (m.size + m.blockSize - 1) / m.blockSize;
        if (blocks > MAX_BLOCKS) {
            throw new InvalidImageException(name + ": VHDX image has " + blocks + " blocks of " + m.blockSize + " bytes, more than"
                    + " Panamax maps (" + MAX_BLOCKS + "); convert it with 'qemu-img convert -f vhdx -O qcow2'");
        }
        long chunkRatio = SECTORS_PER_CHUNK * m.logicalSectorSize / m.blockSize; // payload blocks per sector bitmap block
        long entries = blocks == 0 ? 0 : blocks + (blocks - 1) / chunkRatio;
        if (entries * 8 > bat.end - bat.start) {
            throw new InvalidImageException(name + ": VHDX BAT region (" + (bat.end - bat.start) + " bytes) is too small for the "
                    + entries + " entries a disk of " + m.size + " bytes in blocks of " + m.blockSize + " needs");
        }
        Region[] sorted = regions.toArray(Region[]::new);
        Arrays.sort(sorted, Comparator.comparingLong(Region::start));
        long[] payload = new long[(int) blocks];
        ByteBuffer chunk = ByteBuffer.allocate((int) Math.min(MiB, entries * 8)).order(ByteOrder.LITTLE_ENDIAN);
        int block = 0;
        for (long index = 0; index < entries; ) {
            chunk.clear().limit((int) Math.min(chunk.capacity(), (entries - index) * 8));
            file.readFully(bat.start + index * 8, chunk, "VHDX BAT");
            for (int at = 0; at < chunk.limit(); at += 8, index++) {
                long entry = chunk.getLong(at);
                int state = (int) (entry & 7);
                long offsetMiB = entry >>> 20;
                if ((entry & RESERVED_BAT_BITS) != 0) {
                    throw new InvalidImageException(name + ": VHDX BAT entry " + index + " (0x" + Long.toHexString(entry)
                            + ") has reserved bits set; the BAT is corrupt");
                }
                if (index % (chunkRatio + 1) == chunkRatio) {
                    // A sector bitmap block: only a differencing image reads one, but a present one must lie in the file.
                    if (state != BITMAP_NOT_PRESENT && state != BITMAP_PRESENT) {
                        throw new InvalidImageException(name + ": VHDX BAT entry " + index + " (a sector bitmap block) has"
                                + " state " + state + ", which is not defined; the BAT is corrupt");
                    }
                    if (state == BITMAP_PRESENT && (offsetMiB == 0 || offsetMiB > (fileSize - MiB) / MiB)) {
                        throw new InvalidImageException(name + ": VHDX sector bitmap block of BAT entry " + index
                                + " at MiB " + offsetMiB + " lies outside the file (" + fileSize + " bytes)");
                    }
                    continue;
                }
                switch (state) {
                    case NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED -> {}
                    case FULLY_PRESENT -> {
                        long length = m.blockSize; // the whole block, the last one too, as QEMU requires
                        if (offsetMiB == 0 || offsetMiB > fileSize / MiB || offsetMiB * MiB > fileSize - length) {
                            throw new InvalidImageException(name + ": VHDX payload block " + block + " (BAT entry " + index
                                    + ") at offset " + Long.toUnsignedString(offsetMiB << 20) + " (" + length + " bytes) lies "
                                    + (offsetMiB == 0 ? "in the header section" : "beyond the end of the file (" + fileSize
                                            + " bytes); the image is truncated"));
                        }
                        long start = offsetMiB * MiB;
                        Region meta = lastStartingBefore(sorted, start + length);
                        if (meta != null && meta.end > start) {
                            throw new InvalidImageException(name + ": VHDX payload block " + block + " (offset " + start
                                    + " to " + (start + length) + ") overlaps " + meta.what + "; the BAT is corrupt");
                        }
                    }
                    case PARTIALLY_PRESENT -> throw new InvalidImageException(name + ": VHDX payload block " + block
                            + " is partially present, which only a differencing image's block can be; the BAT is corrupt");
                    default -> throw new InvalidImageException(name + ": VHDX BAT entry " + index + " for payload block " + block
                            + " has state " + state + ", which is not defined; the BAT is corrupt");
                }
                payload[block++] = entry;
            }
        }
        checkBlocksDisjoint(name, payload, m);
        return payload;
    }

    /** The region with the highest start below {@code end}, or null (regions do not overlap, so their ends rise too). */
    private static Region lastStartingBefore(Region[] sorted, long end) {
        int lo = 0, hi = sorted.length - 1, found = -1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (sorted[mid].start < end) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return found < 0 ? null : sorted[found];
    }

    /** Two payload blocks must not share file space: a write to one would change the other. */
    private static void checkBlocksDisjoint(String name, long[] payload, Metadata m) throws InvalidImageException {
        long[] starts = Arrays.stream(payload).filter(e -> (e & 7) == FULLY_PRESENT).map(e -> (e >>> 20) * MiB).toArray();
        Arrays.sort(starts);
        for (int i = 1; i < starts.length; i++) {
            if (starts[i] - starts[i - 1] < m.blockSize) {
                throw new InvalidImageException(name + ": VHDX payload blocks at offsets " + starts[i - 1] + " and " + starts[i]
                        + " overlap (blocks are " + m.blockSize + " bytes); the BAT is corrupt");
            }
        }
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public boolean isReadOnly() {
        return true;
    }

    @Override
    public ImageFile imageFile() {
        return file;
    }

    @Override
    public ImageFormat format() {
        return ImageFormat.VHDX;
    }

    public int blockSize() {
        return blockSize;
    }

    public int logicalSectorSize() {
        return logicalSectorSize;
    }

    public int physicalSectorSize() {
        return physicalSectorSize;
    }

    /** Whether the image is fixed (its blocks all allocated, the file parameters' LeaveBlocksAllocated flag) rather than dynamic. */
    public boolean isFixed() {
        return fixed;
    }

    public long fileSize() throws IOException {
        return file.size();
    }

    public long allocatedBytes() throws IOException {
        return file.allocatedBytes();
    }

    private Extent.Kind kind(int block) {
        return switch ((int) (payload[block] & 7)) {
            case FULLY_PRESENT -> Extent.Kind.DATA;
            case NOT_PRESENT -> Extent.Kind.UNALLOCATED;
            default -> Extent.Kind.ZERO; // UNDEFINED, ZERO, UNMAPPED: no data, read as zeros
        };
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        BlockBackend.checkRange(this, offset, dst.remaining());
        int end = dst.limit();
        while (dst.position() < end) {
            int block = (int) (offset / blockSize);
            int in = (int) (offset % blockSize);
            int n = Math.min(blockSize - in, end - dst.position());
            dst.limit(dst.position() + n);
            if (kind(block) == Extent.Kind.DATA) {
                file.readFully((payload[block] >>> 20) * MiB + in, dst, "VHDX payload block " + block);
            } else {
                while (dst.hasRemaining()) dst.put((byte) 0);
            }
            offset += n;
            dst.limit(end);
        }
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        BlockBackend.checkWritable(this);
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        BlockBackend.checkWritable(this);
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        BlockBackend.checkWritable(this);
    }

    @Override
    public void flush() {}

    @Override
    public Extent extent(long offset, long maxLength) {
        BlockBackend.checkRange(this, offset, maxLength);
        return Extent.ofBlocks(offset, maxLength, blockSize, this::kind);
    }

    @Override
    public synchronized void close() throws IOException {
        if (closed) return;
        closed = true;
        file.close();
    }
}
