package dev.panamax.storage.qcow2;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageCorruptException;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.InvalidImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.DataFormatException;

/**
 * A qcow2 image (version 3, version 2 readable and writable).
 *
 * <p>Crash safety comes from ordering, not journaling: a data cluster is written before any L2 entry
 * points at it, and metadata is written back in {@link #flushMetadata()} in dependency order:
 * refcount increments, then L2 tables, then the L1 table and header, and only then the refcount
 * decrements of clusters those writes stopped referencing. A crash at any point therefore leaves at
 * worst leaked clusters (refcount too high), never a cluster in use with a refcount too low.
 *
 * <p>All public methods are synchronized: requests from several queues are serialized per image.
 */
public final class Qcow2Image implements BlockBackend {

    /**
     * Memory for cached metadata: L2 tables (32 MiB maps 256 GiB of guest with 64 KiB clusters, as in
     * QEMU) and refcount blocks (a quarter of that, also as in QEMU).
     */
    record CacheBudget(long l2TableBytes, long refcountBlockBytes) {
        static final CacheBudget DEFAULT = new CacheBudget(32 << 20, 8 << 20);
    }

    /** Opens the backing file named in an image header; supplied by the caller that tracks the chain. */
    @FunctionalInterface
    public interface BackingOpener {
        BlockBackend open(Path path, ImageFormat format) throws IOException;
    }

    /** An L2 table: one entry per guest cluster of the range one L1 entry maps. */
    static final class L2Table extends MetadataCache.Entry {
        final long[] entries;

        L2Table(long offset, long[] entries, boolean dirty) {
            super(offset, dirty);
            this.entries = entries;
        }
    }

    final ImageFile file;
    final String name;
    final Qcow2Header header;
    final int clusterBits, clusterSize, l2Bits;
    final L2Entry entries;
    private final boolean readOnly;
    long[] l1;
    private int l1DirtyFrom = Integer.MAX_VALUE, l1DirtyTo = -1;
    private boolean headerDirty;
    Refcounts refcounts;
    /** Dirty tables may only reach the disk in dependency order: evicting one flushes all metadata. */
    private final MetadataCache<L2Table> l2Cache;
    List<Qcow2Snapshot> snapshots;
    long snapshotTableBytes;
    private final BlockBackend backing;
    /** End of the file as far as our own writes know; avoids an fstat per request. */
    private long fileEnd;
    /** Next free byte for packing compressed clusters, or 0 when a fresh cluster is needed. */
    private long compressedCursor;
    private final boolean lazyRefcounts;
    private boolean dirtyBitOnDisk;
    private boolean closed;
    private final byte[] clusterBuf;
    private final byte[] decompressed;
    private long decompressedEntry = -1;
    private final DeflateCodec codec = new DeflateCodec();
    /** Compressed bytes on their way to or from the file; made on first use. */
    private byte[] compressedBuf;

    private Qcow2Image(ImageFile file, Qcow2Header header, BlockBackend backing, boolean readOnly, CacheBudget budget)
            throws IOException {
        this.file = file;
        this.name = file.path().toString();
        this.header = header;
        this.clusterBits = header.clusterBits;
        this.clusterSize = 1 << clusterBits;
        this.l2Bits = clusterBits - 3;
        this.entries = new L2Entry(name, clusterBits, header.version);
        this.readOnly = readOnly;
        this.backing = backing;
        this.fileEnd = file.size();
        this.l2Cache = new MetadataCache<>("L2 table", clusterBits, budget.l2TableBytes(), evicted -> flushMetadata());
        this.clusterBuf = new byte[clusterSize];
        this.decompressed = new byte[clusterSize];
        this.lazyRefcounts = (header.compatible & Qcow2Header.COMPAT_LAZY_REFCOUNTS) != 0;
        this.dirtyBitOnDisk = (header.incompatible & Qcow2Header.INCOMPAT_DIRTY) != 0;
        this.l1 = new long[header.l1Size];
        if (header.l1Size > 0) {
            ByteBuffer b = ByteBuffer.allocate(header.l1Size * 8);
            file.readFully(header.l1TableOffset, b, "L1 table");
            b.flip().asLongBuffer().get(l1);
        }
        this.refcounts = Refcounts.load(file, header, budget.refcountBlockBytes());
        long[] tableBytes = new long[1];
        this.snapshots = Qcow2Snapshot.readTable(file, header, tableBytes);
        this.snapshotTableBytes = tableBytes[0];
    }

    /**
     * Opens an image.
     *
     * @param backingOpener opens the backing file, or null to leave it closed (info, check, rebase)
     * @param allowCorrupt  open for writing even when the corrupt bit is set (repair only)
     */
    public static Qcow2Image open(Path path, boolean writable, BackingOpener backingOpener, boolean allowCorrupt)
            throws IOException {
        ImageFile file = ImageFile.open(path, writable);
        try {
            return open(file, backingOpener, allowCorrupt);
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /** Opens an image on an already open file, which it then owns (the caller closes it on failure). */
    public static Qcow2Image open(ImageFile file, BackingOpener backingOpener, boolean allowCorrupt) throws IOException {
        return open(file, backingOpener, allowCorrupt, CacheBudget.DEFAULT);
    }

    /** {@link #open(ImageFile, BackingOpener, boolean)} with a chosen metadata cache size (tests). */
    static Qcow2Image open(ImageFile file, BackingOpener backingOpener, boolean allowCorrupt, CacheBudget budget)
            throws IOException {
        Path path = file.path();
        boolean writable = file.isWritable();
        BlockBackend backing = null;
        try {
            Qcow2Header h = Qcow2Header.read(file);
            if (writable && !allowCorrupt && (h.incompatible & Qcow2Header.INCOMPAT_CORRUPT) != 0) {
                throw new InvalidImageException(path + ": image is marked corrupt, so it may only be opened read-only;"
                        + " run 'panamax image check' and 'panamax image repair' on it");
            }
            if (backingOpener != null && h.backingFile != null) {
                ImageFormat format = null;
                if (h.backingFormat != null) {
                    try {
                        format = ImageFormat.parse(h.backingFormat);
                    } catch (IllegalArgumentException e) {
                        throw new InvalidImageException(path + ": backing file format '" + h.backingFormat
                                + "' is not supported");
                    }
                }
                backing = backingOpener.open(resolveBacking(path, h.backingFile), format);
            }
            Qcow2Image image = new Qcow2Image(file, h, backing, !writable, budget);
            if (writable && image.dirtyBitOnDisk) {
                // Refcounts on disk are stale (lazy refcounts, unclean shutdown): rebuild before any allocation.
                Qcow2Check.rebuildRefcounts(image, null);
                image.clearDirtyBit();
            }
            return image;
        } catch (IOException | RuntimeException e) {
            if (backing != null) backing.close();
            throw e;
        }
    }

    /** Where a backing file name recorded in an image points: relative names are relative to the image's directory. */
    public static Path resolveBacking(Path image, String backingName) {
        Path p = Path.of(backingName);
        if (p.isAbsolute()) return p;
        Path dir = image.toAbsolutePath().getParent();
        return dir == null ? p : dir.resolve(p);
    }

    /** Creates an image file; the backing file (if any) is recorded, not opened. */
    public static void create(Path path, CreateOptions o) throws IOException {
        int cs = o.clusterSize();
        if (Integer.bitCount(cs) != 1 || cs < (1 << Qcow2Header.MIN_CLUSTER_BITS) || cs > (1 << Qcow2Header.MAX_CLUSTER_BITS)) {
            throw new IllegalArgumentException("cluster size " + cs + " must be a power of two from 512 bytes to 2 MiB");
        }
        int bits = Integer.numberOfTrailingZeros(cs);
        if (o.size() < 0 || o.size() > Qcow2Header.maxSize(bits)) {
            throw new IllegalArgumentException("size " + o.size() + " is beyond what qcow2 with " + cs
                    + "-byte clusters can address (" + Qcow2Header.maxSize(bits) + " bytes)");
        }
        if (o.qcow2Version() != 2 && o.qcow2Version() != 3) throw new IllegalArgumentException("qcow2 version must be 2 or 3");
        int rb = o.refcountBits();
        if (Integer.bitCount(rb) != 1 || rb > 64 || (o.qcow2Version() == 2 && rb != 16)) {
            throw new IllegalArgumentException("refcount bits must be a power of two up to 64 (16 for version 2)");
        }
        if (o.qcow2Version() == 2 && o.lazyRefcounts()) throw new IllegalArgumentException("lazy refcounts need qcow2 version 3");
        Qcow2Header h = new Qcow2Header();
        h.version = o.qcow2Version();
        h.clusterBits = bits;
        h.size = o.size();
        h.refcountTableOffset = cs;
        h.refcountTableClusters = 1;
        h.refcountOrder = Integer.numberOfTrailingZeros(rb);
        h.compatible = o.lazyRefcounts() ? Qcow2Header.COMPAT_LAZY_REFCOUNTS : 0;
        h.backingFile = o.backingFile();
        h.backingFormat = o.backingFile() == null || o.backingFormat() == null ? null : o.backingFormat().id();
        h.encode(); // fails early if the backing name does not fit
        try (ImageFile f = ImageFile.create(path)) {
            f.write(2L * cs, ByteBuffer.allocate(cs)); // the first refcount block, filled below
            Refcounts refcounts = Refcounts.createFresh(f, bits, h.refcountOrder, CacheBudget.DEFAULT.refcountBlockBytes());
            long l1Entries = Qcow2Header.l1EntriesFor(o.size(), bits);
            if (l1Entries > 0) {
                long l1Bytes = l1Entries * 8;
                h.l1Size = (int) l1Entries;
                h.l1TableOffset = refcounts.allocate((l1Bytes + cs - 1) / cs);
                f.setSize(Math.max(f.size(), h.l1TableOffset + l1Bytes)); // an all-zero L1 table, as a hole
            }
            refcounts.applyPendingFrees(); // the first table, if it had to grow
            refcounts.writeDirty();
            h.refcountTableOffset = refcounts.tableOffset();
            h.refcountTableClusters = refcounts.tableClusters();
            f.write(0, ByteBuffer.allocate(cs).put(h.encode()).clear());
            f.sync();
        }
    }

    // ---------------------------------------------------------------- accessors

    @Override
    public long size() {
        return header.size;
    }

    @Override
    public boolean isReadOnly() {
        return readOnly;
    }

    @Override
    public ImageFormat format() {
        return ImageFormat.QCOW2;
    }

    @Override
    public BlockBackend backing() {
        return backing;
    }

    public Path path() {
        return file.path();
    }

    public int version() {
        return header.version;
    }

    public int clusterSize() {
        return clusterSize;
    }

    public int refcountBits() {
        return 1 << header.refcountOrder;
    }

    /** Backing file name exactly as recorded in the header, or null. */
    public String backingFileName() {
        return header.backingFile;
    }

    public String backingFormatName() {
        return header.backingFormat;
    }

    public boolean lazyRefcounts() {
        return lazyRefcounts;
    }

    public boolean markedCorrupt() {
        return (header.incompatible & Qcow2Header.INCOMPAT_CORRUPT) != 0;
    }

    public boolean markedDirty() {
        return dirtyBitOnDisk;
    }

    public synchronized List<Qcow2Snapshot> snapshots() {
        return List.copyOf(snapshots);
    }

    public long fileSize() throws IOException {
        return file.size();
    }

    public long allocatedBytes() throws IOException {
        return file.allocatedBytes();
    }

    // ---------------------------------------------------------------- L1/L2 access

    boolean isCompressed(long e) {
        return L2Entry.isCompressed(e);
    }

    boolean isZero(long e) {
        return entries.isZero(e);
    }

    boolean isUnallocated(long e) {
        return entries.isUnallocated(e);
    }

    long dataOffset(long e, long guestOffset) throws InvalidImageException {
        return entries.dataOffset(e, guestOffset, fileEnd);
    }

    long l2Offset(long l1Entry, long l1Index) throws InvalidImageException {
        return entries.l2TableOffset(l1Entry, l1Index);
    }

    /** An L2 table by host offset, from the cache or validated and read from the file. */
    L2Table loadL2(long offset) throws IOException {
        L2Table t = l2Cache.get(offset);
        if (t != null) return t;
        if (offset > fileEnd - clusterSize) {
            throw new ImageCorruptException(name + ": L2 table at offset 0x" + Long.toHexString(offset)
                    + " lies past the end of the file (" + fileEnd + " bytes); the image is truncated or corrupt");
        }
        ByteBuffer b = ByteBuffer.allocate(clusterSize);
        file.readFully(offset, b, "L2 table");
        long[] entries = new long[clusterSize / 8];
        b.flip().asLongBuffer().get(entries);
        t = new L2Table(offset, entries, false);
        l2Cache.put(t);
        return t;
    }

    /** The L2 table covering guest cluster group {@code l1Index}; for writing, allocated or copied as needed. */
    private L2Table l2For(long l1Index, boolean forWrite) throws IOException {
        int i = (int) l1Index;
        long e = l1[i];
        long off = l2Offset(e, i);
        if (off == 0) {
            if (!forWrite) return null;
            long n = allocateClusters(1);
            L2Table t = new L2Table(n, new long[clusterSize / 8], true);
            l2Cache.put(t);
            setL1(i, n | L2Entry.COPIED);
            return t;
        }
        L2Table t = loadL2(off);
        if (forWrite && !L2Entry.isCopied(e)) {
            if (refcounts.get(off >> clusterBits) == 1) {
                setL1(i, off | L2Entry.COPIED);
            } else { // shared with a snapshot: copy on write
                long n = allocateClusters(1);
                long[] copy = t.entries.clone();
                for (int k = 0; k < copy.length; k++) copy[k] &= ~L2Entry.COPIED;
                L2Table c = new L2Table(n, copy, true);
                l2Cache.put(c);
                setL1(i, n | L2Entry.COPIED);
                refcounts.free(off >> clusterBits);
                return c;
            }
        }
        return t;
    }

    void setL1(int i, long value) {
        l1[i] = value;
        l1DirtyFrom = Math.min(l1DirtyFrom, i);
        l1DirtyTo = Math.max(l1DirtyTo, i);
    }

    private long allocateClusters(long n) throws IOException {
        markDirtyForLazyRefcounts();
        return refcounts.allocate(n);
    }

    /** With lazy refcounts the dirty bit must be on disk before refcounts start to lag behind. */
    private void markDirtyForLazyRefcounts() throws IOException {
        if (lazyRefcounts && !dirtyBitOnDisk) {
            header.incompatible |= Qcow2Header.INCOMPAT_DIRTY;
            writeHeader();
            file.sync();
            dirtyBitOnDisk = true;
        }
    }

    private void clearDirtyBit() throws IOException {
        header.incompatible &= ~Qcow2Header.INCOMPAT_DIRTY;
        writeHeader();
        file.sync();
        dirtyBitOnDisk = false;
    }

    void writeHeader() throws IOException {
        ByteBuffer b = header.encode();
        file.write(0, b);
        headerDirty = false;
    }

    // ---------------------------------------------------------------- I/O

    @Override
    public synchronized void read(long offset, ByteBuffer dst) throws IOException {
        BlockBackend.checkRange(this, offset, dst.remaining());
        checkOpen();
        int end = dst.limit();
        while (dst.position() < end) {
            long guestCluster = offset >> clusterBits;
            int in = (int) (offset & (clusterSize - 1));
            int n = Math.min(clusterSize - in, end - dst.position());
            dst.limit(dst.position() + n);
            L2Table t = l2For(guestCluster >> l2Bits, false);
            int mask = (1 << l2Bits) - 1;
            long e = t == null ? 0 : t.entries[(int) (guestCluster & mask)];
            if (t != null && !isCompressed(e) && !isZero(e) && dataOffset(e, offset - in) != 0) {
                // One read for the following clusters of this table that lie right after it in the file.
                long host = L2Entry.hostOffset(e) + clusterSize;
                for (long g = guestCluster + 1; dst.limit() < end && (g & mask) != 0; g++, host += clusterSize) {
                    long next = t.entries[(int) (g & mask)];
                    if (isCompressed(next) || isZero(next) || L2Entry.hostOffset(next) != host
                            || dataOffset(next, g << clusterBits) == 0) {
                        break;
                    }
                    dst.limit(Math.min(end, dst.limit() + clusterSize));
                }
                n = dst.remaining();
                file.readZeroPadded(L2Entry.hostOffset(e) + in, dst);
            } else {
                readFromEntry(e, offset - in, in, dst);
            }
            offset += n;
            dst.limit(end);
        }
    }

    /** Reads {@code dst.remaining()} bytes starting {@code in} bytes into the guest cluster at {@code clusterOffset}. */
    private void readFromEntry(long e, long clusterOffset, int in, ByteBuffer dst) throws IOException {
        if (isCompressed(e)) {
            entries.checkCompressed(e, clusterOffset, fileEnd);
            decompress(e);
            dst.put(decompressed, in, dst.remaining());
        } else if (isZero(e)) {
            dataOffset(e, clusterOffset);
            fillZero(dst);
        } else {
            long off = dataOffset(e, clusterOffset);
            if (off == 0) {
                readBacking(clusterOffset + in, dst);
            } else {
                file.readZeroPadded(off + in, dst);
            }
        }
    }

    private static void fillZero(ByteBuffer dst) {
        while (dst.hasRemaining()) dst.put((byte) 0);
    }

    private void readBacking(long offset, ByteBuffer dst) throws IOException {
        if (backing != null && offset < backing.size()) {
            int n = (int) Math.min(dst.remaining(), backing.size() - offset);
            int limit = dst.limit();
            dst.limit(dst.position() + n);
            backing.read(offset, dst);
            dst.limit(limit);
        }
        fillZero(dst);
    }

    private void decompress(long e) throws IOException {
        if (e == decompressedEntry) return;
        long off = entries.compressedOffset(e);
        int len = (int) Math.min(entries.compressedLength(e), 2L * clusterSize + 512);
        byte[] in = compressedBuf();
        file.readZeroPadded(off, ByteBuffer.wrap(in, 0, len));
        try {
            int produced = codec.inflate(in, len, decompressed, clusterSize);
            if (produced != clusterSize) {
                throw new ImageCorruptException(name + ": compressed cluster at host offset 0x" + Long.toHexString(off)
                        + " inflates to " + produced + " bytes instead of " + clusterSize + "; the image is corrupt");
            }
        } catch (DataFormatException ex) {
            throw new InvalidImageException(name + ": compressed cluster at host offset 0x" + Long.toHexString(off)
                    + " is not valid deflate data: " + ex.getMessage(), ex);
        }
        decompressedEntry = e;
    }

    /** Room for the largest compressed cluster QEMU may write (more than a cluster, when data grows). */
    private byte[] compressedBuf() {
        if (compressedBuf == null) compressedBuf = new byte[2 * clusterSize + 512];
        return compressedBuf;
    }

    @Override
    public synchronized void write(long offset, ByteBuffer src) throws IOException {
        checkWritable();
        BlockBackend.checkRange(this, offset, src.remaining());
        checkOpen();
        int end = src.limit();
        try {
            while (src.position() < end) {
                int in = (int) (offset & (clusterSize - 1));
                int n = Math.min(clusterSize - in, end - src.position());
                src.limit(src.position() + n);
                writeCluster(offset - in, in, src);
                offset += n;
                src.limit(end);
            }
        } catch (ImageCorruptException e) {
            throw markCorrupt(e);
        } finally {
            src.limit(end);
        }
    }

    private void writeCluster(long clusterOffset, int in, ByteBuffer src) throws IOException {
        long guestCluster = clusterOffset >> clusterBits;
        L2Table t = l2For(guestCluster >> l2Bits, true);
        int idx = (int) (guestCluster & ((1 << l2Bits) - 1));
        long e = t.entries[idx];
        if (!isCompressed(e) && !isZero(e)) {
            long off = dataOffset(e, clusterOffset);
            if (off != 0 && (L2Entry.isCopied(e) || refcounts.get(off >> clusterBits) == 1)) {
                if (!L2Entry.isCopied(e)) {
                    t.entries[idx] = e | L2Entry.COPIED;
                    t.dirty = true;
                }
                file.write(off + in, src);
                return;
            }
        }
        ByteBuffer full;
        if (in == 0 && src.remaining() == clusterSize) {
            full = src;
        } else { // partial write into a new cluster: start from what the cluster reads as now
            full = ByteBuffer.wrap(clusterBuf);
            readFromEntry(e, clusterOffset, 0, full);
            full.position(in);
            full.put(src);
            full.clear();
        }
        long n = allocateClusters(1);
        file.write(n, full);
        fileEnd = Math.max(fileEnd, n + clusterSize);
        t.entries[idx] = n | L2Entry.COPIED;
        t.dirty = true;
        release(e);
    }

    /** Queues the refcount decrements for the host clusters an L2 entry referenced. */
    void release(long e) {
        if (isCompressed(e)) {
            refcounts.freeBytes(entries.compressedOffset(e), entries.compressedLength(e));
        } else if (L2Entry.hostOffset(e) != 0) {
            refcounts.free(L2Entry.hostOffset(e) >> clusterBits);
        }
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        zeroRange(offset, length, false);
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        zeroRange(offset, length, true);
    }

    /**
     * Whole clusters lose their data: they become unallocated when nothing shows through (no backing
     * file, or a discard of a v2 image, whose format cannot say "zero"), otherwise zero clusters.
     * Partial clusters are zeroed by writing.
     */
    private synchronized void zeroRange(long offset, long length, boolean discard) throws IOException {
        checkWritable();
        BlockBackend.checkRange(this, offset, length);
        checkOpen();
        try {
            zeroClusters(offset, length, discard);
        } catch (ImageCorruptException e) {
            throw markCorrupt(e);
        }
    }

    private void zeroClusters(long offset, long length, boolean discard) throws IOException {
        long end = offset + length;
        while (offset < end) {
            int in = (int) (offset & (clusterSize - 1));
            long n = Math.min(clusterSize - in, end - offset);
            boolean wholeCluster = in == 0 && (n == clusterSize || offset + n == header.size);
            if (!wholeCluster) {
                writeCluster(offset - in, in, ByteBuffer.allocate((int) n));
                offset += n;
                continue;
            }
            long guestCluster = offset >> clusterBits;
            long l1Index = guestCluster >> l2Bits;
            boolean unallocate = backing == null || (discard && header.version < 3);
            if (unallocate && L2Entry.hostOffset(l1[(int) l1Index]) == 0) { // whole L2 range already unallocated
                long next = (l1Index + 1) << (l2Bits + clusterBits);
                offset = Math.min(end, next);
                continue;
            }
            if (!unallocate && header.version < 3) {
                writeCluster(offset, 0, ByteBuffer.allocate((int) n)); // v2 cannot mark zero clusters
                offset += n;
                continue;
            }
            L2Table t = l2For(l1Index, true);
            int idx = (int) (guestCluster & ((1 << l2Bits) - 1));
            long e = t.entries[idx];
            long wanted = unallocate ? 0 : L2Entry.ZERO;
            if (e != wanted) {
                if (!isCompressed(e)) dataOffset(e, offset);
                t.entries[idx] = wanted;
                t.dirty = true;
                release(e);
            }
            offset += n;
        }
    }

    /**
     * Writes one guest cluster compressed (used by convert). Falls back to a normal write when the data
     * does not compress. {@code data} holds the cluster's bytes (the last cluster may be short).
     */
    public synchronized void writeCompressed(long clusterOffset, byte[] data, int length) throws IOException {
        checkWritable();
        BlockBackend.checkRange(this, clusterOffset, length);
        checkOpen();
        if ((clusterOffset & (clusterSize - 1)) != 0 || length > clusterSize
                || (length < clusterSize && clusterOffset + length != header.size)) {
            throw new IllegalArgumentException("compressed writes cover exactly one whole guest cluster");
        }
        byte[] input = data;
        if (length < clusterSize) input = Arrays.copyOf(data, clusterSize);
        byte[] out = compressedBuf();
        int n = codec.deflate(input, clusterSize, out, clusterSize);
        if (n < 0 || n > clusterSize - 512) {
            writeCluster(clusterOffset, 0, ByteBuffer.wrap(input, 0, clusterSize));
            return;
        }
        long guestCluster = clusterOffset >> clusterBits;
        L2Table t = l2For(guestCluster >> l2Bits, true);
        int idx = (int) (guestCluster & ((1 << l2Bits) - 1));
        long old = t.entries[idx];
        long off = allocateBytes(n);
        file.write(off, ByteBuffer.wrap(out, 0, n));
        decompressedEntry = -1; // a freed cluster may be reused here, with the very same descriptor
        fileEnd = Math.max(fileEnd, off + n);
        t.entries[idx] = entries.compressed(off, n);
        t.dirty = true;
        release(old);
    }

    /** Sub-cluster allocation for compressed data: each user of a host cluster holds one reference. */
    private long allocateBytes(int n) throws IOException {
        if (compressedCursor != 0) {
            long clusterEnd = (compressedCursor | (clusterSize - 1)) + 1;
            if (compressedCursor + n <= clusterEnd) {
                long off = compressedCursor;
                refcounts.add(off >> clusterBits, 1);
                compressedCursor = off + n == clusterEnd ? 0 : off + n;
                return off;
            }
        }
        long start = allocateClusters((n + clusterSize - 1) >> clusterBits);
        compressedCursor = (start + n) % clusterSize == 0 ? 0 : start + n;
        return start;
    }

    @Override
    public synchronized void flush() throws IOException {
        checkOpen();
        if (readOnly) return;
        flushMetadata();
        file.sync();
    }

    /** Writes cached metadata back in dependency order (see the class comment). */
    synchronized void flushMetadata() throws IOException {
        if (readOnly) return;
        if (!lazyRefcounts && refcounts.isDirty()) {
            writeRefcounts();
            file.sync();
        }
        boolean wrote = false;
        for (L2Table t : l2Cache.entries()) {
            if (t.dirty) {
                file.write(t.offset, longs(t.entries, 0, t.entries.length));
                fileEnd = Math.max(fileEnd, t.offset + clusterSize);
                t.dirty = false;
                wrote = true;
            }
        }
        if (wrote) file.sync();
        if (l1DirtyTo >= 0 || headerDirty) {
            if (l1DirtyTo >= 0) {
                file.write(header.l1TableOffset + 8L * l1DirtyFrom, longs(l1, l1DirtyFrom, l1DirtyTo - l1DirtyFrom + 1));
                l1DirtyFrom = Integer.MAX_VALUE;
                l1DirtyTo = -1;
            }
            if (headerDirty) writeHeader();
            file.sync();
        }
        if (refcounts.hasPendingFrees()) {
            long[] freed = refcounts.applyPendingFrees();
            compressedCursor = 0; // its cluster may just have been freed and must not be written to again
            if (!lazyRefcounts) writeRefcounts();
            punchHoles(freed);
        }
    }

    /**
     * Gives the space of freed clusters back to the host file system (what makes a guest's discard
     * useful). Safe: nothing on disk references them any more, the metadata changes came first.
     */
    private void punchHoles(long[] clusters) throws IOException {
        for (int i = 0; i < clusters.length; ) {
            int j = i + 1;
            while (j < clusters.length && clusters[j] == clusters[j - 1] + 1) j++;
            long start = clusters[i] << clusterBits;
            if (start < fileEnd) file.zero(start, Math.min((long) (j - i) << clusterBits, fileEnd - start));
            i = j;
        }
    }

    private void writeRefcounts() throws IOException {
        if (refcounts.writeDirty()) { // the table moved: point the header at it, now that it is on disk
            header.refcountTableOffset = refcounts.tableOffset();
            header.refcountTableClusters = refcounts.tableClusters();
            writeHeader();
        }
        fileEnd = Math.max(fileEnd, file.size());
    }

    static ByteBuffer longs(long[] values, int from, int count) {
        ByteBuffer b = ByteBuffer.allocate(count * 8);
        b.asLongBuffer().put(values, from, count);
        return b;
    }

    @Override
    public synchronized Extent extent(long offset, long maxLength) throws IOException {
        BlockBackend.checkRange(this, offset, maxLength);
        checkOpen();
        long end = offset + maxLength, pos = offset;
        Extent.Kind kind = null;
        while (pos < end) {
            long guestCluster = pos >> clusterBits;
            long l1Index = guestCluster >> l2Bits;
            Extent.Kind k;
            long next;
            L2Table t = l2For(l1Index, false);
            if (t == null) {
                k = Extent.Kind.UNALLOCATED;
                next = (l1Index + 1) << (l2Bits + clusterBits);
            } else {
                long e = t.entries[(int) (guestCluster & ((1 << l2Bits) - 1))];
                k = isUnallocated(e) ? Extent.Kind.UNALLOCATED : isZero(e) ? Extent.Kind.ZERO : Extent.Kind.DATA;
                next = (guestCluster + 1) << clusterBits;
            }
            if (kind == null) kind = k;
            else if (k != kind) break;
            pos = Math.min(next, end);
        }
        return new Extent(offset, pos - offset, kind);
    }

    // ---------------------------------------------------------------- L1 replacement, snapshots

    /** Puts a new active L1 table in fresh clusters and points the header at it; the old one is freed after. */
    void replaceL1(long[] newL1) throws IOException {
        long oldOffset = header.l1TableOffset;
        long oldClusters = clustersFor(8L * l1.length);
        long newOffset = newL1.length == 0 ? 0 : allocateClusters(clustersFor(8L * newL1.length));
        flushMetadata();
        if (newL1.length > 0) {
            file.write(newOffset, longs(newL1, 0, newL1.length));
            fileEnd = Math.max(fileEnd, newOffset + 8L * newL1.length);
            file.sync();
        }
        l1 = newL1;
        l1DirtyFrom = Integer.MAX_VALUE;
        l1DirtyTo = -1;
        header.l1TableOffset = newOffset;
        header.l1Size = newL1.length;
        writeHeader();
        file.sync();
        if (oldOffset != 0) for (long c = 0; c < oldClusters; c++) refcounts.free((oldOffset >> clusterBits) + c);
        flushMetadata();
    }

    long clustersFor(long bytes) {
        return (bytes + clusterSize - 1) >> clusterBits;
    }

    /** Applies {@code delta} per reference to every L2 table and cluster reachable from {@code table}. */
    void adjustTreeRefcounts(long[] table, long delta, boolean deferred) throws IOException {
        for (int i = 0; i < table.length; i++) {
            long l2 = l2Offset(table[i], i);
            if (l2 == 0) continue;
            L2Table t = loadL2(l2);
            for (long e : t.entries) {
                if (isCompressed(e)) {
                    long off = entries.compressedOffset(e), len = entries.compressedLength(e);
                    for (long c = off >> clusterBits; c <= (off + len - 1) >> clusterBits; c++) adjust(c, delta, deferred);
                } else if (L2Entry.hostOffset(e) != 0) {
                    adjust(L2Entry.hostOffset(e) >> clusterBits, delta, deferred);
                }
            }
            adjust(l2 >> clusterBits, delta, deferred);
        }
    }

    private void adjust(long cluster, long delta, boolean deferred) throws IOException {
        if (deferred) refcounts.free(cluster);
        else refcounts.add(cluster, delta);
    }

    /** Sets the COPIED flag on active L1/L2 entries exactly where the refcount is one. */
    void fixCopiedFlags() throws IOException {
        for (int i = 0; i < l1.length; i++) {
            long l2 = l2Offset(l1[i], i);
            if (l2 == 0) continue;
            long wanted = refcounts.get(l2 >> clusterBits) == 1 ? l2 | L2Entry.COPIED : l2;
            if (l1[i] != wanted) setL1(i, wanted);
            L2Table t = loadL2(l2);
            for (int k = 0; k < t.entries.length; k++) {
                long e = t.entries[k];
                if (isCompressed(e) || L2Entry.hostOffset(e) == 0) continue;
                long off = L2Entry.hostOffset(e);
                long want = refcounts.get(off >> clusterBits) == 1 ? e | L2Entry.COPIED : e & ~L2Entry.COPIED;
                if (want != e) {
                    t.entries[k] = want;
                    t.dirty = true;
                }
            }
        }
    }

    private Qcow2Snapshot find(String idOrName) throws InvalidImageException {
        for (Qcow2Snapshot s : snapshots) if (s.id().equals(idOrName)) return s;
        for (Qcow2Snapshot s : snapshots) if (s.name().equals(idOrName)) return s;
        throw new InvalidImageException(name + ": no snapshot with ID or name '" + idOrName + "'");
    }

    long[] readL1(Qcow2Snapshot s) throws IOException {
        long[] table = new long[s.l1Size()];
        if (table.length > 0) {
            ByteBuffer b = ByteBuffer.allocate(table.length * 8);
            file.readFully(s.l1TableOffset(), b, "L1 table of snapshot " + s.id());
            b.flip().asLongBuffer().get(table);
        }
        return table;
    }

    public synchronized Qcow2Snapshot createSnapshot(String snapshotName) throws IOException {
        checkWritable();
        checkOpen();
        if (snapshotName.isEmpty()) throw new IllegalArgumentException("snapshot name must not be empty");
        for (Qcow2Snapshot s : snapshots) {
            if (s.name().equals(snapshotName)) {
                throw new IllegalArgumentException("a snapshot named '" + snapshotName + "' already exists");
            }
        }
        if (snapshots.size() >= Qcow2Header.MAX_SNAPSHOTS) throw new InvalidImageException(name + ": too many snapshots");
        flushMetadata();
        // Increments first: every L2 table and cluster gains the snapshot's reference.
        adjustTreeRefcounts(l1, 1, false);
        for (int i = 0; i < l1.length; i++) if (L2Entry.isCopied(l1[i])) setL1(i, l1[i] & ~L2Entry.COPIED);
        for (int i = 0; i < l1.length; i++) {
            long l2 = L2Entry.hostOffset(l1[i]);
            if (l2 == 0) continue;
            L2Table t = loadL2(l2);
            for (int k = 0; k < t.entries.length; k++) {
                if (L2Entry.isCopied(t.entries[k])) {
                    t.entries[k] &= ~L2Entry.COPIED;
                    t.dirty = true;
                }
            }
        }
        long l1Copy = l1.length == 0 ? 0 : allocateClusters(clustersFor(8L * l1.length));
        if (l1.length > 0) {
            file.write(l1Copy, longs(l1, 0, l1.length));
            fileEnd = Math.max(fileEnd, l1Copy + 8L * l1.length);
        }
        flushMetadata();
        long max = 0;
        for (Qcow2Snapshot s : snapshots) {
            try {
                max = Math.max(max, Long.parseLong(s.id()));
            } catch (NumberFormatException ignored) {
                // IDs written by other tools need not be numbers
            }
        }
        Instant now = Instant.now();
        Qcow2Snapshot snap = new Qcow2Snapshot(Long.toString(max + 1), snapshotName, l1Copy, l1.length,
                now.getEpochSecond(), now.getNano(), 0, 0, Qcow2Snapshot.extraFor(header.size), header.size);
        List<Qcow2Snapshot> updated = new ArrayList<>(snapshots);
        updated.add(snap);
        writeSnapshotTable(updated);
        return snap;
    }

    /** Writes a new snapshot table, switches the header to it, frees the old table. */
    private void writeSnapshotTable(List<Qcow2Snapshot> updated) throws IOException {
        long oldOffset = header.snapshotsOffset, oldBytes = snapshotTableBytes;
        ByteBuffer table = Qcow2Snapshot.encode(updated);
        long bytes = table.remaining();
        long offset = 0;
        if (bytes > 0) {
            offset = allocateClusters(clustersFor(bytes));
            flushMetadata();
            file.write(offset, table);
            fileEnd = Math.max(fileEnd, offset + bytes);
            file.sync();
        }
        header.snapshotsOffset = offset;
        header.nbSnapshots = updated.size();
        writeHeader();
        file.sync();
        snapshots = updated;
        snapshotTableBytes = bytes;
        if (oldBytes > 0) refcounts.freeBytes(oldOffset, oldBytes);
        flushMetadata();
    }

    public synchronized void deleteSnapshot(String idOrName) throws IOException {
        checkWritable();
        checkOpen();
        Qcow2Snapshot s = find(idOrName);
        long[] table = readL1(s);
        flushMetadata();
        List<Qcow2Snapshot> updated = new ArrayList<>(snapshots);
        updated.remove(s);
        writeSnapshotTable(updated);
        adjustTreeRefcounts(table, -1, true);
        if (s.l1Size() > 0) refcounts.freeBytes(s.l1TableOffset(), 8L * s.l1Size());
        flushMetadata();
        fixCopiedFlags(); // clusters the snapshot shared may now be exclusively ours again
        flushMetadata();
    }

    /** Reverts the disk to a snapshot: its L1 table becomes the active one (the snapshot stays). */
    public synchronized void applySnapshot(String idOrName) throws IOException {
        checkWritable();
        checkOpen();
        Qcow2Snapshot s = find(idOrName);
        long[] table = readL1(s);
        flushMetadata();
        adjustTreeRefcounts(table, 1, false);
        flushMetadata();
        long[] old = l1;
        long[] fresh = Arrays.copyOf(table, table.length);
        for (int i = 0; i < fresh.length; i++) fresh[i] &= ~L2Entry.COPIED;
        if (clustersFor(8L * fresh.length) <= clustersFor(8L * old.length) && header.l1TableOffset != 0) {
            l1 = fresh;
            l1DirtyFrom = 0;
            l1DirtyTo = fresh.length - 1;
            header.l1Size = fresh.length;
            header.size = s.diskSize();
            headerDirty = true;
            if (fresh.length == 0) l1DirtyTo = -1;
            // L1 is rewritten in place; its stale tail beyond l1Size is ignored by readers.
        } else {
            header.size = s.diskSize();
            replaceL1(fresh);
        }
        adjustTreeRefcounts(old, -1, true);
        flushMetadata();
        fixCopiedFlags();
        flushMetadata();
    }

    // ---------------------------------------------------------------- rebase

    /**
     * Records a different backing file without copying data ("unsafe" rebase): for when the backing
     * file moved or was renamed, or the caller has made sure contents are equal. Null removes it.
     */
    public synchronized void setBackingFile(String backingFile, ImageFormat format) throws IOException {
        checkWritable();
        checkOpen();
        String oldFile = header.backingFile, oldFormat = header.backingFormat;
        header.backingFile = backingFile;
        header.backingFormat = backingFile == null || format == null ? null : format.id();
        try {
            header.encode();
        } catch (InvalidImageException e) {
            header.backingFile = oldFile;
            header.backingFormat = oldFormat;
            throw e;
        }
        flushMetadata();
        writeHeader();
        file.sync();
    }

    // ---------------------------------------------------------------- close

    private void checkWritable() throws IOException {
        BlockBackend.checkWritable(this);
        if (markedCorrupt()) {
            throw new dev.panamax.storage.ReadOnlyImageException(name + ": image is marked corrupt; check and repair it"
                    + " before writing to it again");
        }
    }

    private void checkOpen() throws IOException {
        if (closed) throw new IOException(name + ": image is closed");
    }

    @Override
    public synchronized void close() throws IOException {
        if (closed) return;
        closed = true;
        try {
            if (!readOnly) {
                flushMetadata();
                if (lazyRefcounts) {
                    writeRefcounts();
                    file.sync();
                    if (dirtyBitOnDisk) clearDirtyBit();
                }
                file.sync();
            }
        } finally {
            codec.close();
            try {
                file.close();
            } finally {
                if (backing != null) backing.close();
            }
        }
    }

    /**
     * Marks the image corrupt on disk so that no program writes to it until it is repaired (QEMU
     * honours the same bit); returns the exception to throw, saying so.
     */
    private ImageCorruptException markCorrupt(ImageCorruptException e) {
        if (readOnly || markedCorrupt()) return e;
        try {
            header.incompatible |= Qcow2Header.INCOMPAT_CORRUPT;
            writeHeader();
            file.sync();
        } catch (IOException suppressed) {
            e.addSuppressed(suppressed);
            return e;
        }
        ImageCorruptException marked = new ImageCorruptException(e.getMessage()
                + "; the image is now marked corrupt: check and repair it before writing to it again");
        marked.initCause(e);
        return marked;
    }

    void clearCorrupt() throws IOException {
        header.incompatible &= ~Qcow2Header.INCOMPAT_CORRUPT;
        writeHeader();
        file.sync();
    }

    MetadataCache<L2Table> l2Cache() {
        return l2Cache;
    }

    MetadataCache<Refcounts.Block> refcountCache() {
        return refcounts.cache();
    }

    long fileEnd() {
        return fileEnd;
    }

    void noteFileEnd(long end) {
        fileEnd = Math.max(fileEnd, end);
    }
}
