package dev.panamax.storage.vhd;

import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.DamagedRangeException;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * A VHD (Virtual PC / Hyper-V) image, fixed or dynamic. Fixed: the data followed by a 512-byte footer.
 * Dynamic: footer copy, dynamic header, block allocation table (BAT), then blocks, each a sector
 * bitmap followed by the block's data, and the footer at the end. All fields are big-endian.
 */
public final class VhdImage implements BlockBackend {
    static final int SECTOR = 512, FOOTER = 512, DYN_HEADER = 1024;
    static final int TYPE_FIXED = 2, TYPE_DYNAMIC = 3, TYPE_DIFFERENCING = 4;
    static final int UNALLOCATED = 0xFFFFFFFF;
    static final int DEFAULT_BLOCK = 2 << 20;
    /** The format's limit (2040 GiB); QEMU enforces the same. */
    public static final long MAX_SIZE = 2040L << 30;
    private static final byte[] COOKIE = "conectix".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] DYN_COOKIE = "cxsparse".getBytes(StandardCharsets.US_ASCII);
    private static final long MAX_CHS_SECTORS = 65535L * 16 * 255;

    private final ImageFile file;
    private final String name;
    private final boolean readOnly;
    private final long size;
    private final byte[] footer;
    private final boolean dynamic;
    private final long batOffset;
    private final int blockSize;
    private final int bitmapBytes;
    private final int[] bat;
    /** Where the footer sits and the next block would go (dynamic). */
    private long dataEnd;
    private final Map<Integer, byte[]> bitmaps = new HashMap<>();
    /** Blocks found damaged by a salvage open, and why. */
    private final Map<Integer, String> damagedBlocks = new HashMap<>();
    private boolean closed;

    private VhdImage(ImageFile file, boolean readOnly, long size, byte[] footer, boolean dynamic, long batOffset,
            int blockSize, int[] bat, long dataEnd) {
        this.file = file;
        this.name = file.path().toString();
        this.readOnly = readOnly;
        this.size = size;
        this.footer = footer;
        this.dynamic = dynamic;
        this.batOffset = batOffset;
        this.blockSize = blockSize;
        this.bitmapBytes = dynamic ? roundUp(blockSize / SECTOR / 8, SECTOR) : 0;
        this.bat = bat;
        this.dataEnd = dataEnd;
    }

    public static boolean isCookie(byte[] first8) {
        return first8.length >= 8 && Arrays.equals(first8, 0, 8, COOKIE, 0, 8);
    }

    private static int roundUp(int v, int to) {
        return (v + to - 1) / to * to;
    }

    static int checksum(byte[] b, int from, int len, int checksumAt) {
        int sum = 0;
        for (int i = from; i < from + len; i++) {
            if (i >= checksumAt && i < checksumAt + 4) continue;
            sum += b[i] & 0xff;
        }
        return ~sum;
    }

    public static VhdImage open(Path path, boolean writable) throws IOException {
        ImageFile file = ImageFile.open(path, writable);
        try {
            return open(file);
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /** Takes ownership of {@code file} (closed on failure by the caller). */
    public static VhdImage open(ImageFile file) throws IOException {
        return open(file, false);
    }

    /**
     * {@link #open(ImageFile)}; with {@code salvage} (read-only) blocks the block table places outside
     * the file or on the table are not refused but fail when read, with a {@link DamagedRangeException}.
     */
    public static VhdImage open(ImageFile file, boolean salvage) throws IOException {
        boolean writable = file.isWritable();
        if (salvage && writable) throw new IllegalArgumentException("salvage opens are read-only");
        String name = file.path().toString();
        long fileSize = file.size();
        if (fileSize < FOOTER) throw new InvalidImageException(name + ": file is too short to be a VHD image");
        byte[] footer = new byte[FOOTER];
        file.readFully(fileSize - FOOTER, ByteBuffer.wrap(footer), "VHD footer");
        if (!isCookie(footer)) {
            // A damaged or missing footer: dynamic images keep a copy at the start.
            file.readFully(0, ByteBuffer.wrap(footer), "VHD footer copy");
            if (!isCookie(footer)) throw new InvalidImageException(name + ": no VHD footer (cookie 'conectix') found");
        }
        ByteBuffer f = ByteBuffer.wrap(footer);
        if (f.getInt(64) != checksum(footer, 0, FOOTER, 64)) {
            throw new InvalidImageException(name + ": VHD footer checksum does not match; the footer is damaged");
        }
        int type = f.getInt(60);
        long current = f.getLong(48);
        long chsSectors = (long) (f.getShort(56) & 0xffff) * (f.get(58) & 0xff) * (f.get(59) & 0xff);
        String creator = new String(footer, 28, 4, StandardCharsets.US_ASCII);
        // As QEMU does: Virtual PC and old QEMU size disks by CHS geometry, everything else by current size.
        long size = (creator.equals("vpc ") || creator.equals("qemu")) && chsSectors != MAX_CHS_SECTORS
                ? chsSectors * SECTOR : current;
        if (size < 0 || size > MAX_SIZE || size % SECTOR != 0) {
            throw new InvalidImageException(name + ": VHD disk size " + size + " is invalid (must be a multiple of 512 up to "
                    + MAX_SIZE + ")");
        }
        switch (type) {
            case TYPE_FIXED -> {
                if (size > fileSize - FOOTER) {
                    throw new InvalidImageException(name + ": fixed VHD claims " + size + " bytes but the file holds only "
                            + (fileSize - FOOTER) + "; it is truncated");
                }
                return new VhdImage(file, !writable, size, footer, false, 0, 0, null, fileSize - FOOTER);
            }
            case TYPE_DYNAMIC -> {
                long dynOffset = f.getLong(16);
                if (dynOffset < 0 || dynOffset > fileSize - DYN_HEADER) {
                    throw new InvalidImageException(name + ": VHD dynamic header offset " + dynOffset + " is outside the file");
                }
                byte[] dh = new byte[DYN_HEADER];
                file.readFully(dynOffset, ByteBuffer.wrap(dh), "VHD dynamic header");
                ByteBuffer d = ByteBuffer.wrap(dh);
                if (!Arrays.equals(dh, 0, 8, DYN_COOKIE, 0, 8)) {
                    throw new InvalidImageException(name + ": VHD dynamic header has a bad cookie");
                }
                if (d.getInt(36) != checksum(dh, 0, DYN_HEADER, 36)) {
                    throw new InvalidImageException(name + ": VHD dynamic header checksum does not match");
                }
                long batOffset = d.getLong(16);
                int entries = d.getInt(28);
                int blockSize = d.getInt(32);
                if (blockSize < SECTOR * 8 || blockSize > (256 << 20) || Integer.bitCount(blockSize) != 1) {
                    throw new InvalidImageException(name + ": VHD block size " + Integer.toUnsignedString(blockSize)
                            + " is invalid (a power of two from 4 KiB to 256 MiB)");
                }
                long needed = (size + blockSize - 1) / blockSize;
                if (entries < needed || entries > needed + 1 + (MAX_SIZE / blockSize)) {
                    throw new InvalidImageException(name + ": VHD block table has " + Integer.toUnsignedString(entries)
                            + " entries but the disk needs " + needed);
                }
                if (batOffset < 0 || batOffset % SECTOR != 0 || batOffset > fileSize - 4L * entries) {
                    throw new InvalidImageException(name + ": VHD block table at offset " + batOffset + " (" + entries
                            + " entries) lies outside the file");
                }
                ByteBuffer b = ByteBuffer.allocate(4 * entries);
                file.readFully(batOffset, b, "VHD block table");
                int[] bat = new int[entries];
                b.flip().asIntBuffer().get(bat);
                long dataEnd = Math.max(roundUp8(batOffset + 4L * entries), fileSize - FOOTER);
                VhdImage img = new VhdImage(file, !writable, size, footer, true, batOffset, blockSize, bat,
                        dataEnd - dataEnd % SECTOR);
                img.validateBlocks(fileSize, salvage);
                return img;
            }
            case TYPE_DIFFERENCING -> throw new InvalidImageException(name + ": differencing VHD images are not supported");
            default -> throw new InvalidImageException(name + ": unknown VHD disk type " + type);
        }
    }

    private static long roundUp8(long v) {
        return (v + SECTOR - 1) / SECTOR * SECTOR;
    }

    /**
     * Checks the block table against the file. Normally the first problem refuses the image; with
     * {@code salvage} each problem is confined to its block ({@link #damagedBlocks}) and the rest stays readable.
     */
    private void validateBlocks(long fileSize, boolean salvage) throws InvalidImageException {
        long span = bitmapBytes + (long) blockSize;
        // Two BAT entries sharing space would make writes to one disk block change another.
        Integer[] order = new Integer[bat.length];
        int n = 0;
        for (int i = 0; i < bat.length; i++) if (bat[i] != UNALLOCATED) order[n++] = i;
        Arrays.sort(order, 0, n, (a, b) -> Long.compare(Integer.toUnsignedLong(bat[a]), Integer.toUnsignedLong(bat[b])));
        for (int k = 1; k < n; k++) {
            long prev = Integer.toUnsignedLong(bat[order[k - 1]]) * SECTOR, start = Integer.toUnsignedLong(bat[order[k]]) * SECTOR;
            if (start - prev < span) {
                blockProblem(salvage, order[k], name + ": VHD blocks at offsets " + prev + " and " + start
                        + " overlap; the block table is corrupt");
            }
        }
        for (int i = 0; i < bat.length; i++) {
            if (bat[i] == UNALLOCATED) continue;
            long off = Integer.toUnsignedLong(bat[i]) * SECTOR;
            if (off < batOffset + 4L * bat.length && off + span > batOffset) {
                blockProblem(salvage, i, name + ": VHD block " + i + " overlaps the block table");
            } else if (off + bitmapBytes > fileSize) {
                blockProblem(salvage, i, name + ": VHD block " + i + " at offset " + off
                        + " lies past the end of the file (" + fileSize + " bytes)");
            }
        }
    }

    private void blockProblem(boolean salvage, int block, String problem) throws InvalidImageException {
        if (!salvage) throw new InvalidImageException(problem);
        damagedBlocks.putIfAbsent(block, problem);
    }

    /** The exception for a read of a damaged block: its whole range of the disk. */
    private DamagedRangeException damagedBlock(int block, String reason, Throwable cause) {
        long start = (long) block * blockSize;
        return new DamagedRangeException(start, Math.min(blockSize, size - start), reason, cause);
    }

    /** Creates an image of at least {@code size} bytes (rounded up to a CHS geometry, as VHD readers expect). */
    public static void create(Path path, long size, boolean fixed) throws IOException {
        if (size < 0 || size > MAX_SIZE) {
            throw new ImageRequestException("VHD images can be at most " + MAX_SIZE + " bytes (2040 GiB), not " + size);
        }
        long sectors = (size + SECTOR - 1) / SECTOR;
        int[] chs = geometry(sectors);
        for (long i = 1; sectors > (long) chs[0] * chs[1] * chs[2] && sectors < MAX_CHS_SECTORS; i++) {
            chs = geometry(sectors + i);
        }
        long chsSectors = (long) chs[0] * chs[1] * chs[2];
        if (chsSectors >= sectors) sectors = chsSectors;
        long total = sectors * SECTOR;
        byte[] footer = new byte[FOOTER];
        ByteBuffer f = ByteBuffer.wrap(footer);
        f.put(COOKIE).putInt(2).putInt(0x00010000).putLong(fixed ? -1L : FOOTER);
        f.putInt((int) (System.currentTimeMillis() / 1000 - 946684800L)); // seconds since 2000-01-01
        f.put("pmax".getBytes(StandardCharsets.US_ASCII)).putInt(0x00010000).putInt(0x5769326B); // "Wi2k"
        f.putLong(total).putLong(total);
        f.putShort((short) chs[0]).put((byte) chs[1]).put((byte) chs[2]);
        f.putInt(fixed ? TYPE_FIXED : TYPE_DYNAMIC).putInt(0);
        byte[] uuid = new byte[16];
        new SecureRandom().nextBytes(uuid);
        f.put(uuid);
        f.putInt(64, checksum(footer, 0, FOOTER, 64));
        try (ImageFile file = ImageFile.create(path)) {
            if (fixed) {
                file.setSize(total);
                file.write(total, ByteBuffer.wrap(footer));
            } else {
                int entries = (int) ((total + DEFAULT_BLOCK - 1) / DEFAULT_BLOCK);
                long batOffset = FOOTER + DYN_HEADER;
                byte[] dh = new byte[DYN_HEADER];
                ByteBuffer d = ByteBuffer.wrap(dh);
                d.put(DYN_COOKIE).putLong(-1L).putLong(batOffset).putInt(0x00010000).putInt(entries).putInt(DEFAULT_BLOCK);
                d.putInt(36, checksum(dh, 0, DYN_HEADER, 36));
                byte[] batBytes = new byte[(int) roundUp8(4L * entries)];
                Arrays.fill(batBytes, (byte) 0xff);
                file.write(0, ByteBuffer.wrap(footer));
                file.write(FOOTER, ByteBuffer.wrap(dh));
                file.write(batOffset, ByteBuffer.wrap(batBytes));
                file.write(batOffset + batBytes.length, ByteBuffer.wrap(footer));
            }
            file.sync();
        }
    }

    /** Cylinders, heads, sectors per track for a sector count: the algorithm of the VHD specification. */
    static int[] geometry(long totalSectors) {
        long ts = Math.min(totalSectors, MAX_CHS_SECTORS);
        long spt, heads, cth;
        if (ts >= 65535L * 16 * 63) {
            spt = 255;
            heads = 16;
            cth = ts / spt;
        } else {
            spt = 17;
            cth = ts / spt;
            heads = Math.max(4, (cth + 1023) / 1024);
            if (cth >= heads * 1024 || heads > 16) {
                spt = 31;
                heads = 16;
                cth = ts / spt;
            }
            if (cth >= heads * 1024) {
                spt = 63;
                heads = 16;
                cth = ts / spt;
            }
        }
        return new int[] {(int) (cth / heads), (int) heads, (int) spt};
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public boolean isReadOnly() {
        return readOnly;
    }

    @Override
    public ImageFile imageFile() {
        return file;
    }

    @Override
    public ImageFormat format() {
        return ImageFormat.VHD;
    }

    public boolean isDynamic() {
        return dynamic;
    }

    public long allocatedBytes() throws IOException {
        return file.allocatedBytes();
    }

    public long fileSize() throws IOException {
        return file.size();
    }

    private long blockData(int block) {
        return Integer.toUnsignedLong(bat[block]) * SECTOR + bitmapBytes;
    }

    private byte[] bitmap(int block) throws IOException {
        byte[] bm = bitmaps.get(block);
        if (bm == null) {
            bm = new byte[bitmapBytes];
            file.readFully(Integer.toUnsignedLong(bat[block]) * SECTOR, ByteBuffer.wrap(bm), "VHD sector bitmap");
            bitmaps.put(block, bm);
        }
        return bm;
    }

    private static boolean bit(byte[] bm, int sector) {
        return (bm[sector >>> 3] & (0x80 >>> (sector & 7))) != 0; // most significant bit first
    }

    @Override
    public synchronized void read(long offset, ByteBuffer dst) throws IOException {
        BlockBackend.checkRange(this, offset, dst.remaining());
        if (!dynamic) {
            file.readZeroPadded(offset, dst);
            return;
        }
        int end = dst.limit();
        while (dst.position() < end) {
            int block = (int) (offset / blockSize);
            int in = (int) (offset % blockSize);
            int n = Math.min(blockSize - in, end - dst.position());
            dst.limit(dst.position() + n);
            String damage = damagedBlocks.get(block);
            if (damage != null) throw damagedBlock(block, damage, null);
            if (bat[block] == UNALLOCATED) {
                while (dst.hasRemaining()) dst.put((byte) 0);
            } else {
                byte[] bm;
                try {
                    bm = bitmap(block);
                } catch (InvalidImageException e) {
                    throw damagedBlock(block, e.getMessage(), e);
                }
                long base = blockData(block);
                while (dst.hasRemaining()) { // runs of sectors with the same bitmap state
                    int sector = in / SECTOR;
                    boolean present = bit(bm, sector);
                    int run = 0;
                    while (run < dst.remaining()) {
                        int s = (in + run) / SECTOR;
                        if (bit(bm, s) != present) break;
                        run += Math.min(SECTOR - (in + run) % SECTOR, dst.remaining() - run);
                    }
                    int lim = dst.limit();
                    dst.limit(dst.position() + run);
                    if (present) file.readZeroPadded(base + in, dst);
                    else while (dst.hasRemaining()) dst.put((byte) 0);
                    dst.limit(lim);
                    in += run;
                }
            }
            offset += n;
            dst.limit(end);
        }
    }

    @Override
    public synchronized void write(long offset, ByteBuffer src) throws IOException {
        BlockBackend.checkWritable(this);
        BlockBackend.checkRange(this, offset, src.remaining());
        if (!dynamic) {
            file.write(offset, src);
            return;
        }
        int end = src.limit();
        while (src.position() < end) {
            int block = (int) (offset / blockSize);
            int in = (int) (offset % blockSize);
            int n = Math.min(blockSize - in, end - src.position());
            src.limit(src.position() + n);
            if (bat[block] == UNALLOCATED) allocateBlock(block);
            markSectorsPresent(block, in, n);
            file.write(blockData(block) + in, src);
            offset += n;
            src.limit(end);
        }
    }

    /**
     * Appends a block: the footer moves first (so the file always ends in a valid footer), then the
     * block's bitmap (all sectors present, data a hole reading zeros), and last the BAT entry.
     */
    private void allocateBlock(int block) throws IOException {
        long start = dataEnd;
        long newEnd = start + bitmapBytes + blockSize;
        if (newEnd / SECTOR > 0xFFFFFFFFL) throw new InvalidImageException(name + ": VHD file would exceed its 2 TiB limit");
        file.write(newEnd, ByteBuffer.wrap(footer));
        byte[] bm = new byte[bitmapBytes];
        Arrays.fill(bm, 0, blockSize / SECTOR / 8, (byte) 0xff);
        file.write(start, ByteBuffer.wrap(bm));
        file.zero(start + bitmapBytes, blockSize); // old footer bytes inside the new block must read as zeros
        bat[block] = (int) (start / SECTOR);
        file.write(batOffset + 4L * block, ByteBuffer.allocate(4).putInt(0, bat[block]));
        bitmaps.put(block, bm);
        dataEnd = newEnd;
    }

    /** Sectors not yet marked (blocks written by other programs) are zeroed first, then marked present. */
    private void markSectorsPresent(int block, int in, int n) throws IOException {
        byte[] bm = bitmap(block);
        boolean changed = false;
        for (int s = in / SECTOR; s <= (in + n - 1) / SECTOR; s++) {
            if (!bit(bm, s)) {
                file.write(blockData(block) + (long) s * SECTOR, ByteBuffer.allocate(SECTOR));
                bm[s >>> 3] |= (byte) (0x80 >>> (s & 7));
                changed = true;
            }
        }
        if (changed) file.write(Integer.toUnsignedLong(bat[block]) * SECTOR, ByteBuffer.wrap(bm));
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        discard(offset, length);
    }

    /** VHD cannot mark ranges free: allocated data is zeroed (as holes in the file where possible). */
    @Override
    public synchronized void discard(long offset, long length) throws IOException {
        BlockBackend.checkWritable(this);
        BlockBackend.checkRange(this, offset, length);
        if (!dynamic) {
            file.zero(offset, length);
            return;
        }
        long end = offset + length;
        while (offset < end) {
            int block = (int) (offset / blockSize);
            int in = (int) (offset % blockSize);
            long n = Math.min(blockSize - in, end - offset);
            if (bat[block] != UNALLOCATED) {
                long base = blockData(block);
                // Sectors wholly inside the range become holes; partial sectors at the edges get zeros.
                long first = roundUp8(in), last = (in + n) / SECTOR * SECTOR;
                if (first < last) {
                    file.write(base + in, ByteBuffer.allocate((int) (first - in)));
                    file.zero(base + first, last - first);
                    file.write(base + last, ByteBuffer.allocate((int) (in + n - last)));
                } else {
                    file.write(base + in, ByteBuffer.allocate((int) n));
                }
            }
            offset += n;
        }
    }

    @Override
    public synchronized void flush() throws IOException {
        if (!readOnly) file.sync();
    }

    @Override
    public synchronized Extent extent(long offset, long maxLength) throws IOException {
        BlockBackend.checkRange(this, offset, maxLength);
        long end = offset + maxLength;
        if (!dynamic) {
            long data = file.nextData(offset);
            if (data > offset) return new Extent(offset, Math.min(data, end) - offset, Extent.Kind.ZERO);
            return new Extent(offset, Math.min(Math.max(file.nextHole(offset), offset + 1), end) - offset, Extent.Kind.DATA);
        }
        return Extent.ofBlocks(offset, maxLength, blockSize, block -> bat[block] != UNALLOCATED ? Extent.Kind.DATA : Extent.Kind.UNALLOCATED);
    }

    @Override
    public synchronized void close() throws IOException {
        if (closed) return;
        closed = true;
        try {
            if (!readOnly) file.sync();
        } finally {
            file.close();
        }
    }
}
