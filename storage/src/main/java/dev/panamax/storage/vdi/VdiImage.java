package dev.panamax.storage.vdi;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.BitSet;

/**
 * A VirtualBox VDI image, dynamic or static (preallocated): a 512-byte header (a text banner, then the
 * signature at 0x40), a block map of 32-bit entries, then the data blocks (1 MiB by default) in the
 * order they were allocated. A map entry is the block's index in the data area, or free (reads zeros)
 * or discarded (reads zeros). All fields are little-endian.
 */
public final class VdiImage implements BlockBackend {
    static final int SECTOR = 512;
    public static final int SIGNATURE = 0xbeda107f;
    static final int VERSION_1_1 = 0x00010001;
    static final int TYPE_DYNAMIC = 1, TYPE_STATIC = 2;
    static final int FREE = 0xffffffff, DISCARDED = 0xfffffffe;
    public static final int DEFAULT_BLOCK = 1 << 20;
    /** The most blocks Panamax maps (a 64 MiB map; 16 TiB of 1 MiB blocks): every entry is held in memory. */
    static final long MAX_BLOCKS = 16L << 20;
    /** The largest image {@link #create} makes and Panamax opens. */
    public static final long MAX_SIZE = MAX_BLOCKS * DEFAULT_BLOCK;
    private static final String BANNER = "<<< QEMU VM Virtual Disk Image >>>\n";

    private final ImageFile file;
    private final String name;
    private final boolean readOnly;
    private final int type;
    private final long size;
    private final int blockSize;
    private final long mapOffset;
    private final long dataOffset;
    private final int[] map;
    private int blocksAllocated;
    private boolean closed;

    private VdiImage(ImageFile file, int type, long size, int blockSize, long mapOffset, long dataOffset,
            int[] map, int blocksAllocated) {
        this.file = file;
        this.name = file.path().toString();
        this.readOnly = !file.isWritable();
        this.type = type;
        this.size = size;
        this.blockSize = blockSize;
        this.mapOffset = mapOffset;
        this.dataOffset = dataOffset;
        this.map = map;
        this.blocksAllocated = blocksAllocated;
    }

    public static boolean isSignature(ByteBuffer head) {
        return head.limit() >= 0x44 && head.duplicate().order(ByteOrder.LITTLE_ENDIAN).getInt(0x40) == SIGNATURE;
    }

    public static VdiImage open(Path path, boolean writable) throws IOException {
        ImageFile file = ImageFile.open(path, writable);
        try {
            return open(file);
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /** Takes ownership of {@code file} (closed on failure by the caller). */
    public static VdiImage open(ImageFile file) throws IOException {
        String name = file.path().toString();
        long fileSize = file.size();
        byte[] hb = new byte[SECTOR];
        file.readFully(0, ByteBuffer.wrap(hb), "VDI header");
        ByteBuffer h = ByteBuffer.wrap(hb).order(ByteOrder.LITTLE_ENDIAN);
        if (!isSignature(h)) throw new InvalidImageException(name + ": no VDI signature (0xbeda107f at offset 0x40)");
        int version = h.getInt(0x44);
        if (version != VERSION_1_1) {
            throw new InvalidImageException(name + ": VDI version " + (version >>> 16) + "." + (version & 0xffff)
                    + " is not supported (only 1.1)");
        }
        int type = h.getInt(0x4c);
        if (type != TYPE_DYNAMIC && type != TYPE_STATIC) {
            throw new InvalidImageException(name + ": VDI image type " + Integer.toUnsignedString(type) + " is not supported"
                    + " (1 dynamic and 2 static; undo and differencing images are not)");
        }
        long mapOffset = Integer.toUnsignedLong(h.getInt(0x154));
        long dataOffset = Integer.toUnsignedLong(h.getInt(0x158));
        int sectorSize = h.getInt(0x168);
        long diskSize = h.getLong(0x170);
        int blockSize = h.getInt(0x178);
        int blockExtra = h.getInt(0x17c);
        long blocks = Integer.toUnsignedLong(h.getInt(0x180));
        long allocated = Integer.toUnsignedLong(h.getInt(0x184));
        if (sectorSize != SECTOR) {
            throw new InvalidImageException(name + ": VDI sector size " + Integer.toUnsignedString(sectorSize) + " is not 512");
        }
        if (blockSize < SECTOR || blockSize > (256 << 20) || Integer.bitCount(blockSize) != 1) {
            throw new InvalidImageException(name + ": VDI block size " + Integer.toUnsignedString(blockSize)
                    + " is invalid (a power of two from 512 bytes to 256 MiB)");
        }
        if (blockExtra != 0) {
            throw new InvalidImageException(name + ": VDI blocks with " + Integer.toUnsignedString(blockExtra)
                    + " bytes of extra data are not supported");
        }
        if (!isZero(hb, 0x1a8, 32)) {
            throw new InvalidImageException(name + ": VDI image has a parent or link UUID; differencing VDI images are not supported");
        }
        if (diskSize < 0 || diskSize > MAX_SIZE) {
            throw new InvalidImageException(name + ": VDI disk size " + Long.toUnsignedString(diskSize) + " is invalid (at most "
                    + MAX_SIZE + " bytes)");
        }
        // 'VBoxManage convertfromraw' writes sizes that are no multiple of a sector; QEMU rounds them up, and so does Panamax.
        long size = (diskSize + SECTOR - 1) / SECTOR * SECTOR;
        long needed = (size + blockSize - 1) / blockSize;
        if (blocks < needed || blocks > MAX_BLOCKS) {
            throw new InvalidImageException(name + ": VDI block map has " + blocks + " entries but the disk needs " + needed
                    + (blocks > MAX_BLOCKS ? " (and Panamax maps at most " + MAX_BLOCKS + ")" : ""));
        }
        if (allocated > blocks) {
            throw new InvalidImageException(name + ": VDI header counts " + allocated + " allocated blocks in a map of " + blocks);
        }
        long mapBytes = 4 * blocks;
        if (mapOffset < SECTOR || mapOffset % SECTOR != 0 || dataOffset % SECTOR != 0 || mapOffset > fileSize - mapBytes
                || dataOffset < mapOffset + mapBytes) {
            throw new InvalidImageException(name + ": VDI block map (" + blocks + " entries at offset " + mapOffset
                    + ", data at offset " + dataOffset + ") is misplaced: it must start on a sector after the header, lie"
                    + " inside the file (" + fileSize + " bytes) and end before the data");
        }
        ByteBuffer mb = ByteBuffer.allocate((int) mapBytes).order(ByteOrder.LITTLE_ENDIAN);
        file.readFully(mapOffset, mb, "VDI block map");
        int[] map = new int[(int) blocks];
        mb.flip().asIntBuffer().get(map);
        // Each data block belongs to one disk block, and lies inside the file and below the allocation count
        // (the next block allocated goes at index blocksAllocated, so a higher index would be overwritten).
        BitSet used = new BitSet((int) allocated);
        for (int i = 0; i < map.length; i++) {
            if (map[i] == FREE || map[i] == DISCARDED) continue;
            long index = Integer.toUnsignedLong(map[i]);
            if (index >= allocated) {
                throw new InvalidImageException(name + ": VDI block map entry " + i + " names data block " + index
                        + ", but the header counts only " + allocated + " allocated blocks");
            }
            if (used.get((int) index)) {
                throw new InvalidImageException(name + ": VDI block map entries share data block " + index
                        + "; the block map is corrupt");
            }
            used.set((int) index);
            long end = dataOffset + (index + 1) * blockSize;
            if (end > fileSize) {
                throw new InvalidImageException(name + ": VDI data block " + index + " (for disk block " + i
                        + ") ends at offset " + end + ", past the end of the file (" + fileSize + " bytes); the image is truncated");
            }
        }
        return new VdiImage(file, type, size, blockSize, mapOffset, dataOffset, map, (int) allocated);
    }

    private static boolean isZero(byte[] b, int from, int len) {
        for (int i = from; i < from + len; i++) if (b[i] != 0) return false;
        return true;
    }

    /** Creates a VDI image as qemu-img does: header, block map at 0x200, data after it (all allocated when static). */
    public static void create(Path path, long size, boolean fixed) throws IOException {
        if (size < 0 || size > MAX_SIZE) {
            throw new ImageRequestException("VDI images can be at most " + MAX_SIZE + " bytes (16 TiB), not " + size);
        }
        size = (size + SECTOR - 1) / SECTOR * SECTOR;
        int blocks = (int) ((size + DEFAULT_BLOCK - 1) / DEFAULT_BLOCK);
        int mapBytes = (4 * blocks + SECTOR - 1) / SECTOR * SECTOR;
        ByteBuffer h = ByteBuffer.allocate(SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        h.put(0, BANNER.getBytes(StandardCharsets.US_ASCII));
        h.putInt(0x40, SIGNATURE).putInt(0x44, VERSION_1_1).putInt(0x48, 0x180).putInt(0x4c, fixed ? TYPE_STATIC : TYPE_DYNAMIC);
        h.putInt(0x154, SECTOR).putInt(0x158, SECTOR + mapBytes).putInt(0x168, SECTOR).putLong(0x170, size)
                .putInt(0x178, DEFAULT_BLOCK).putInt(0x180, blocks).putInt(0x184, fixed ? blocks : 0);
        byte[] uuids = new byte[32];
        new SecureRandom().nextBytes(uuids);
        uuids[6] = (byte) (uuids[6] & 0x0f | 0x40); // version 4 (random) UUIDs
        uuids[8] = (byte) (uuids[8] & 0x3f | 0x80);
        uuids[22] = (byte) (uuids[22] & 0x0f | 0x40);
        uuids[24] = (byte) (uuids[24] & 0x3f | 0x80);
        h.put(0x188, uuids);
        ByteBuffer m = ByteBuffer.allocate(mapBytes).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < blocks; i++) m.putInt(fixed ? i : FREE);
        try (ImageFile file = ImageFile.create(path)) {
            file.write(0, h);
            file.write(SECTOR, m.clear());
            if (fixed) file.setSize(SECTOR + mapBytes + (long) blocks * DEFAULT_BLOCK);
            file.sync();
        }
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
        return ImageFormat.VDI;
    }

    public boolean isStatic() {
        return type == TYPE_STATIC;
    }

    public int blockSize() {
        return blockSize;
    }

    public long fileSize() throws IOException {
        return file.size();
    }

    public long allocatedBytes() throws IOException {
        return file.allocatedBytes();
    }

    private static boolean isAllocated(int entry) {
        return entry != FREE && entry != DISCARDED;
    }

    private long blockData(int block) {
        return dataOffset + Integer.toUnsignedLong(map[block]) * blockSize;
    }

    @Override
    public synchronized void read(long offset, ByteBuffer dst) throws IOException {
        BlockBackend.checkRange(this, offset, dst.remaining());
        int end = dst.limit();
        while (dst.position() < end) {
            int block = (int) (offset / blockSize);
            int in = (int) (offset % blockSize);
            int n = Math.min(blockSize - in, end - dst.position());
            dst.limit(dst.position() + n);
            if (isAllocated(map[block])) {
                file.readFully(blockData(block) + in, dst, "VDI block " + block);
            } else {
                while (dst.hasRemaining()) dst.put((byte) 0);
            }
            offset += n;
            dst.limit(end);
        }
    }

    @Override
    public synchronized void write(long offset, ByteBuffer src) throws IOException {
        BlockBackend.checkWritable(this);
        BlockBackend.checkRange(this, offset, src.remaining());
        int end = src.limit();
        while (src.position() < end) {
            int block = (int) (offset / blockSize);
            int in = (int) (offset % blockSize);
            int n = Math.min(blockSize - in, end - src.position());
            src.limit(src.position() + n);
            if (!isAllocated(map[block])) allocate(block);
            file.write(blockData(block) + in, src);
            offset += n;
            src.limit(end);
        }
    }

    /**
     * Gives disk block {@code block} the next data block: the file grows by a block of zeros (a hole),
     * then the map entry and the header's count are written, so a crash leaves at worst an unused block.
     */
    private void allocate(int block) throws IOException {
        long index = blocksAllocated;
        long start = dataOffset + index * blockSize;
        if (index >= map.length) {
            throw new InvalidImageException(name + ": VDI image has no free data block left (" + map.length + " allocated)");
        }
        if (file.size() < start + blockSize) file.setSize(start + blockSize);
        else file.zero(start, blockSize); // bytes another program left past the last block
        map[block] = (int) index;
        file.write(mapOffset + 4L * block, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, map[block]));
        blocksAllocated++;
        file.write(0x184, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, blocksAllocated));
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        discard(offset, length);
    }

    /** Allocated data is zeroed in place (holes where the file system allows); VDI cannot hand blocks back without moving others. */
    @Override
    public synchronized void discard(long offset, long length) throws IOException {
        BlockBackend.checkWritable(this);
        BlockBackend.checkRange(this, offset, length);
        long end = offset + length;
        while (offset < end) {
            int block = (int) (offset / blockSize);
            int in = (int) (offset % blockSize);
            long n = Math.min(blockSize - in, end - offset);
            if (isAllocated(map[block])) {
                long at = blockData(block) + in;
                long first = Math.min((at + SECTOR - 1) / SECTOR * SECTOR, at + n);
                long last = Math.max(first, (at + n) / SECTOR * SECTOR);
                file.write(at, ByteBuffer.allocate((int) (first - at)));
                file.zero(first, last - first);
                file.write(last, ByteBuffer.allocate((int) (at + n - last)));
            }
            offset += n;
        }
    }

    @Override
    public synchronized void flush() throws IOException {
        if (!readOnly) file.sync();
    }

    private Extent.Kind kind(int block) {
        return map[block] == FREE ? Extent.Kind.UNALLOCATED : map[block] == DISCARDED ? Extent.Kind.ZERO : Extent.Kind.DATA;
    }

    @Override
    public synchronized Extent extent(long offset, long maxLength) throws IOException {
        BlockBackend.checkRange(this, offset, maxLength);
        return Extent.ofBlocks(offset, maxLength, blockSize, this::kind);
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
