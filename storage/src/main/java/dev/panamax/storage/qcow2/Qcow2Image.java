package dev.panamax.storage.qcow2;

import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.DamagedRangeException;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageCorruptException;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.Qcow2Compression;
import dev.panamax.storage.ReadOnlyImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.zip.DataFormatException;

/**
 * A qcow2 image (version 3, version 2 readable and writable): guest reads and writes mapped through
 * the L1/L2 tables (standard or extended, with subclusters), zeroing and discard, compressed
 * clusters (zlib or zstd), snapshots and the backing file.
 *
 * <p>The parts: {@link Qcow2Header} (cluster 0), {@link Qcow2Metadata} (tables in memory, allocation,
 * and the write ordering that makes the image crash-safe: read its class comment before changing
 * any write path), {@link L2Entry} (entry bits), {@link MetadataCache} (bounded L2 table and refcount
 * block caches), {@link Refcounts}, {@link Qcow2Snapshots}, {@link ClusterCodec} (compressed
 * clusters) and {@link Qcow2Check} (check and repair, through a {@link CheckView}).
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

    private final Qcow2Metadata meta;
    private final Qcow2Snapshots snapshots;
    private final ImageFile file;
    private final String name;
    private final Qcow2Header header;
    private final int clusterBits, clusterSize, l2Bits;
    private final L2Entry entries;
    private final boolean readOnly;
    private final BlockBackend backing;
    private boolean closed;
    private final byte[] clusterBuf;
    private final byte[] decompressed;
    /** The compressed entry whose data {@link #decompressed} holds, or -1. */
    private long decompressedEntry = -1;
    private final ClusterCodec codec;
    /** Compressed bytes on their way to or from the file; made on first use. */
    private byte[] compressedBuf;

    private Qcow2Image(ImageFile file, Qcow2Header header, BlockBackend backing, boolean readOnly, CacheBudget budget)
            throws IOException {
        this.meta = new Qcow2Metadata(file, header, readOnly, budget);
        this.snapshots = Qcow2Snapshots.read(meta);
        this.file = file;
        this.name = meta.name;
        this.header = header;
        this.clusterBits = meta.clusterBits;
        this.clusterSize = meta.clusterSize;
        this.l2Bits = meta.l2Bits;
        this.entries = meta.entries;
        this.readOnly = readOnly;
        this.backing = backing;
        this.clusterBuf = new byte[clusterSize];
        this.decompressed = new byte[clusterSize];
        this.codec = ClusterCodec.of(header.compression);
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
                    } catch (ImageRequestException e) {
                        throw new InvalidImageException(path + ": backing file format '" + h.backingFormat
                                + "' is not supported: " + e.getMessage());
                    }
                }
                backing = backingOpener.open(resolveBacking(path, h.backingFile), format);
            }
            Qcow2Image image = new Qcow2Image(file, h, backing, !writable, budget);
            if (writable && image.meta.markedDirty()) {
                // Refcounts on disk are stale (lazy refcounts, unclean shutdown): rebuild before any allocation.
                Qcow2Check.rebuildRefcounts(image.checkView());
                image.meta.clearDirtyBit();
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
            throw new ImageRequestException("cluster size " + cs + " must be a power of two from 512 bytes to 2 MiB");
        }
        int bits = Integer.numberOfTrailingZeros(cs);
        if (o.qcow2Version() != 2 && o.qcow2Version() != 3) throw new ImageRequestException("qcow2 version must be 2 or 3");
        Qcow2Compression compression = o.compression() == null ? Qcow2Compression.ZLIB : o.compression();
        if (o.qcow2Version() == 2 && (compression != Qcow2Compression.ZLIB || o.extendedL2())) {
            throw new ImageRequestException("zstd compression and extended L2 entries need qcow2 version 3");
        }
        if (o.extendedL2() && bits < Qcow2Header.MIN_EXTL2_CLUSTER_BITS) {
            throw new ImageRequestException("extended L2 entries need a cluster size of at least "
                    + (1 << Qcow2Header.MIN_EXTL2_CLUSTER_BITS) + " bytes (32 subclusters of 512 bytes or more); " + cs
                    + " is too small");
        }
        int l2Bits = Qcow2Header.l2Bits(bits, o.extendedL2());
        if (o.size() < 0 || o.size() > Qcow2Header.maxSize(bits, l2Bits)) {
            throw new ImageRequestException("size " + o.size() + " is beyond what qcow2 with " + cs
                    + "-byte clusters can address (" + Qcow2Header.maxSize(bits, l2Bits) + " bytes)");
        }
        int rb = o.refcountBits();
        if (Integer.bitCount(rb) != 1 || rb > 64 || (o.qcow2Version() == 2 && rb != 16)) {
            throw new ImageRequestException("refcount bits must be a power of two up to 64 (16 for version 2)");
        }
        if (o.qcow2Version() == 2 && o.lazyRefcounts()) throw new ImageRequestException("lazy refcounts need qcow2 version 3");
        Qcow2Header h = new Qcow2Header();
        h.version = o.qcow2Version();
        h.clusterBits = bits;
        h.size = o.size();
        h.refcountTableOffset = cs;
        h.refcountTableClusters = 1;
        h.refcountOrder = Integer.numberOfTrailingZeros(rb);
        h.compatible = o.lazyRefcounts() ? Qcow2Header.COMPAT_LAZY_REFCOUNTS : 0;
        h.compression = compression;
        if (compression != Qcow2Compression.ZLIB) h.incompatible |= Qcow2Header.INCOMPAT_COMPRESSION;
        if (o.extendedL2()) h.incompatible |= Qcow2Header.INCOMPAT_EXTL2;
        h.backingFile = o.backingFile();
        h.backingFormat = o.backingFile() == null || o.backingFormat() == null ? null : o.backingFormat().id();
        h.encode(); // fails early if the backing name does not fit
        try (ImageFile f = ImageFile.create(path)) {
            f.write(2L * cs, ByteBuffer.allocate(cs)); // the first refcount block, filled below
            Refcounts refcounts = Refcounts.createFresh(f, bits, h.refcountOrder, CacheBudget.DEFAULT.refcountBlockBytes());
            long l1Entries = Qcow2Header.l1EntriesFor(o.size(), bits, l2Bits);
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
    public ImageFile imageFile() {
        return file;
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

    /** How compressed clusters are (and will be) compressed. */
    public Qcow2Compression compression() {
        return header.compression;
    }

    /** Whether L2 entries are extended: 32 subclusters per cluster, each allocated, zero or unallocated. */
    public boolean extendedL2() {
        return header.extendedL2();
    }

    /** Backing file name exactly as recorded in the header, or null. */
    public String backingFileName() {
        return header.backingFile;
    }

    public String backingFormatName() {
        return header.backingFormat;
    }

    public boolean lazyRefcounts() {
        return meta.lazyRefcounts;
    }

    public boolean markedCorrupt() {
        return meta.markedCorrupt();
    }

    public boolean markedDirty() {
        return meta.markedDirty();
    }

    public synchronized List<Qcow2Snapshot> snapshots() {
        return snapshots.list();
    }

    public long fileSize() throws IOException {
        return file.size();
    }

    public long allocatedBytes() throws IOException {
        return file.allocatedBytes();
    }

    // ---------------------------------------------------------------- reading

    /** Validates a standard entry against the file as it is now; returns its host offset (0 when none). */
    private long dataOffset(long e, long guestOffset) throws InvalidImageException {
        long off = entries.dataOffset(e, guestOffset, meta.fileEnd());
        if (off != 0 && !entries.isZero(e)) checkNotOnTables(off, guestOffset);
        return off;
    }

    /**
     * A data cluster on the L1 or refcount table would give the guest metadata to read, and a write
     * there would destroy it (QEMU's overlap check, for the tables the header names).
     */
    private void checkNotOnTables(long off, long guestOffset) throws ImageCorruptException {
        long l1 = header.l1TableOffset, l1End = l1 + 8L * header.l1Size;
        Refcounts r = meta.refcounts();
        long rt = r.tableOffset(), rtEnd = rt + ((long) r.tableClusters() << clusterBits);
        String on = off < l1End && off + clusterSize > l1 ? "the L1 table" : off < rtEnd && off + clusterSize > rt
                ? "the refcount table" : null;
        if (on != null) {
            throw new ImageCorruptException(name + ": data cluster for guest offset " + guestOffset + " is at host offset 0x"
                    + Long.toHexString(off) + ", on " + on + "; the image is corrupt");
        }
    }

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
            L2Table t = l2ForRead(guestCluster >> l2Bits);
            int mask = (1 << l2Bits) - 1;
            int idx = (int) (guestCluster & mask);
            long e = t == null ? 0 : t.entries[idx], bitmap = t == null ? 0 : t.bitmap(idx);
            try {
                if (t != null && wholeData(e, bitmap, offset - in)) {
                    // One read for the following clusters of this table that lie right after it in the file.
                    long host = L2Entry.hostOffset(e) + clusterSize;
                    for (long g = guestCluster + 1; dst.limit() < end && (g & mask) != 0; g++, host += clusterSize) {
                        int k = (int) (g & mask);
                        long next = t.entries[k];
                        // A damaged entry ends the run; it fails on its own, naming its own cluster, next time round.
                        if (L2Entry.hostOffset(next) != host || !wholeDataOrDamaged(next, t.bitmap(k), g << clusterBits)) break;
                        dst.limit(Math.min(end, dst.limit() + clusterSize));
                    }
                    n = dst.remaining();
                    file.readZeroPadded(L2Entry.hostOffset(e) + in, dst);
                } else {
                    readFromEntry(e, bitmap, offset - in, in, dst);
                }
            } catch (DamagedRangeException d) {
                throw d; // from the backing file, which names its own range
            } catch (ImageCorruptException d) {
                throw damaged(offset - in, clusterSize, d);
            }
            offset += n;
            dst.limit(end);
        }
    }

    /**
     * The L2 table of guest cluster group {@code l1Index} for reading, or null. A table that cannot be
     * had (an invalid L1 entry, a table outside the file) damages the whole range it maps.
     */
    private L2Table l2ForRead(long l1Index) throws IOException {
        try {
            return meta.l2Table(l1Index, false);
        } catch (InvalidImageException e) {
            long span = 1L << (l2Bits + clusterBits);
            throw damaged(l1Index * span, span, e);
        }
    }

    /** The exception for damage to {@code [start, start + length)} of the disk (clipped to its size), caused by {@code e}. */
    private DamagedRangeException damaged(long start, long length, InvalidImageException e) {
        return new DamagedRangeException(start, Math.min(length, header.size - start), e.getMessage(), e);
    }

    private boolean wholeDataOrDamaged(long e, long bitmap, long clusterOffset) {
        try {
            return wholeData(e, bitmap, clusterOffset);
        } catch (InvalidImageException damaged) {
            return false;
        }
    }

    /** Whether a (validated) entry's whole cluster is data in its host cluster: one read, no subclusters to tell apart. */
    private boolean wholeData(long e, long bitmap, long clusterOffset) throws InvalidImageException {
        if (L2Entry.isCompressed(e) || entries.isZero(e) || dataOffset(e, clusterOffset) == 0) return false;
        if (!entries.extended()) return true;
        entries.checkBitmap(e, bitmap, clusterOffset);
        return (bitmap & L2Entry.ALLOC_BITS) == L2Entry.ALLOC_BITS;
    }

    /**
     * Reads {@code dst.remaining()} bytes starting {@code in} bytes into the guest cluster at
     * {@code clusterOffset}, whose entry is {@code e} (and subcluster bitmap {@code bitmap}).
     */
    private void readFromEntry(long e, long bitmap, long clusterOffset, int in, ByteBuffer dst) throws IOException {
        if (entries.extended()) entries.checkBitmap(e, bitmap, clusterOffset);
        if (L2Entry.isCompressed(e)) {
            entries.checkCompressed(e, clusterOffset, meta.fileEnd());
            decompress(e, clusterOffset);
            dst.put(decompressed, in, dst.remaining());
        } else if (entries.isZero(e)) {
            dataOffset(e, clusterOffset);
            fillZero(dst);
        } else if (entries.extended()) {
            readSubclusters(dataOffset(e, clusterOffset), bitmap, clusterOffset, in, dst);
        } else {
            long off = dataOffset(e, clusterOffset);
            if (off == 0) {
                readBacking(clusterOffset + in, dst);
            } else {
                file.readZeroPadded(off + in, dst);
            }
        }
    }

    /** {@link #readFromEntry} of a standard extended entry: one step per run of subclusters in the same state. */
    private void readSubclusters(long off, long bitmap, long clusterOffset, int in, ByteBuffer dst) throws IOException {
        int scBits = entries.subclusterBits();
        int end = in + dst.remaining(), limit = dst.limit();
        for (int pos = in; pos < end; ) {
            int sc = pos >> scBits;
            int state = L2Entry.subcluster(bitmap, sc);
            int runEnd = (sc + 1) << scBits;
            while (runEnd < end && L2Entry.subcluster(bitmap, runEnd >> scBits) == state) runEnd += 1 << scBits;
            runEnd = Math.min(runEnd, end);
            dst.limit(dst.position() + (runEnd - pos));
            switch (state) {
                case L2Entry.DATA -> file.readZeroPadded(off + pos, dst);
                case L2Entry.ZEROS -> fillZero(dst);
                default -> readBacking(clusterOffset + pos, dst);
            }
            pos = runEnd;
        }
        dst.limit(limit);
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

    /**
     * Decompresses the cluster of a (checked) compressed entry into {@link #decompressed}. Only the
     * bytes that are in the file are handed to the codec: a descriptor running past the end of the
     * file (QEMU does not pad the last sector) leaves a stream that must end in time by itself.
     */
    private void decompress(long e, long guestOffset) throws IOException {
        if (e == decompressedEntry) return;
        decompressedEntry = -1; // the buffer is about to change: a failure below must not leave it named after the last cluster
        long off = entries.compressedOffset(e);
        int len = (int) Math.min(Math.min(entries.compressedLength(e), 2L * clusterSize + 512), meta.fileEnd() - off);
        byte[] in = compressedBuf();
        file.readZeroPadded(off, ByteBuffer.wrap(in, 0, len));
        String what = header.compression.id() + "-compressed cluster for guest offset " + guestOffset + " (host offset 0x"
                + Long.toHexString(off) + ", " + len + " bytes in the file)";
        try {
            int produced = codec.decompress(in, len, decompressed, clusterSize);
            if (produced != clusterSize) {
                throw new ImageCorruptException(name + ": " + what + " decompresses to " + produced + " bytes instead of "
                        + clusterSize + "; the image is corrupt");
            }
        } catch (DataFormatException ex) {
            throw new ImageCorruptException(name + ": " + what + " is not valid " + header.compression.id() + " data ("
                    + ex.getMessage() + "); the image is corrupt");
        }
        decompressedEntry = e;
    }

    /** Room for the largest compressed cluster QEMU may write (more than a cluster, when data grows). */
    private byte[] compressedBuf() {
        if (compressedBuf == null) compressedBuf = new byte[2 * clusterSize + 512];
        return compressedBuf;
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
            L2Table t;
            try {
                t = l2ForRead(l1Index);
            } catch (DamagedRangeException d) {
                if (pos > offset) break; // the extent so far stands; the damage is the next caller's
                throw d;
            }
            if (t == null) {
                k = Extent.Kind.UNALLOCATED;
                next = (l1Index + 1) << (l2Bits + clusterBits);
            } else {
                int idx = (int) (guestCluster & ((1 << l2Bits) - 1));
                long e = t.entries[idx];
                if (entries.extended() && !L2Entry.isCompressed(e)) { // one subcluster at a time
                    long bitmap = t.bitmap(idx);
                    try {
                        entries.checkBitmap(e, bitmap, guestCluster << clusterBits);
                    } catch (ImageCorruptException d) {
                        if (pos > offset) break;
                        throw damaged(guestCluster << clusterBits, clusterSize, d);
                    }
                    int scBits = entries.subclusterBits();
                    int sc = (int) ((pos >> scBits) & (L2Entry.SUBCLUSTERS - 1));
                    k = switch (L2Entry.subcluster(bitmap, sc)) {
                        case L2Entry.DATA -> Extent.Kind.DATA;
                        case L2Entry.ZEROS -> Extent.Kind.ZERO;
                        default -> Extent.Kind.UNALLOCATED;
                    };
                    next = ((pos >> scBits) + 1) << scBits;
                } else {
                    k = entries.isUnallocated(e) ? Extent.Kind.UNALLOCATED
                            : entries.isZero(e) ? Extent.Kind.ZERO : Extent.Kind.DATA;
                    next = (guestCluster + 1) << clusterBits;
                }
            }
            if (kind == null) kind = k;
            else if (k != kind) break;
            pos = Math.min(next, end);
        }
        return new Extent(offset, pos - offset, kind);
    }

    // ---------------------------------------------------------------- writing

    @Override
    public synchronized void write(long offset, ByteBuffer src) throws IOException {
        checkWritable();
        BlockBackend.checkRange(this, offset, src.remaining());
        checkOpen();
        int end = src.limit();
        try {
            while (src.position() < end) {
                int in = (int) (offset & (clusterSize - 1));
                if (in == 0 && !entries.extended()) {
                    int n = writeWholeClusters(offset, src, end);
                    if (n > 0) {
                        offset += n;
                        continue;
                    }
                }
                int n = Math.min(clusterSize - in, end - src.position());
                src.limit(src.position() + n);
                writeCluster(offset - in, in, src);
                offset += n;
                src.limit(end);
            }
        } catch (ImageCorruptException e) {
            throw meta.markCorrupt(e);
        } finally {
            src.limit(end);
        }
    }

    /**
     * Writes the whole clusters at the start of {@code src[position, end)} with one pwrite, as far as
     * they lie in one L2 table and go where the first goes: all in place at consecutive host offsets,
     * or all into new clusters taken in one allocation (a bulk copy into a new image, or a guest
     * writing a large request). Each cluster follows {@link #writeCluster}'s rules; the L2 entries are
     * set after the data is written. Returns the bytes written: 0 when fewer than two clusters
     * qualify, which {@link #writeCluster} then does alone.
     */
    private int writeWholeClusters(long offset, ByteBuffer src, int end) throws IOException {
        int max = (end - src.position()) >> clusterBits;
        if (max < 2) return 0;
        long guestCluster = offset >> clusterBits;
        int idx = (int) (guestCluster & ((1 << l2Bits) - 1));
        max = Math.min(max, (1 << l2Bits) - idx);
        L2Table t = meta.l2Table(guestCluster >> l2Bits, true);
        long first = inPlaceOffset(t.entries[idx], offset);
        int n = 1;
        while (n < max) {
            long off = inPlaceOffset(t.entries[idx + n], offset + ((long) n << clusterBits));
            if (first == 0 ? off != 0 : off != first + ((long) n << clusterBits)) break;
            n++;
        }
        if (n < 2) return 0;
        int bytes = n << clusterBits;
        ByteBuffer run = src.slice(src.position(), bytes);
        if (first != 0) {
            file.write(first, run);
            for (int i = 0; i < n; i++) {
                long e = t.entries[idx + i];
                if (!L2Entry.isCopied(e)) t.set(idx + i, e | L2Entry.COPIED);
            }
        } else {
            long host = meta.allocateClusters(n);
            file.write(host, run);
            meta.noteFileEnd(host + bytes);
            for (int i = 0; i < n; i++) {
                long e = t.entries[idx + i];
                t.set(idx + i, (host + ((long) i << clusterBits)) | L2Entry.COPIED, L2Entry.ALLOC_BITS);
                meta.release(e);
            }
        }
        src.position(src.position() + bytes);
        return bytes;
    }

    /** Where a write into the cluster of entry {@code e} goes in place (the image owns it alone), or 0 when it needs a new cluster. */
    private long inPlaceOffset(long e, long clusterOffset) throws IOException {
        if (L2Entry.isCompressed(e) || entries.isZero(e)) return 0;
        long off = dataOffset(e, clusterOffset);
        return off != 0 && (L2Entry.isCopied(e) || meta.refcount(off >> clusterBits) == 1) ? off : 0;
    }

    /**
     * Writes into one guest cluster: in place when the image owns it alone (COPIED, or refcount one),
     * else into a new cluster that is written before its L2 entry is set (rule 1 of
     * {@link Qcow2Metadata}); the old cluster is released once the new entry is on disk (rule 3).
     */
    private void writeCluster(long clusterOffset, int in, ByteBuffer src) throws IOException {
        long guestCluster = clusterOffset >> clusterBits;
        L2Table t = meta.l2Table(guestCluster >> l2Bits, true);
        int idx = (int) (guestCluster & ((1 << l2Bits) - 1));
        long e = t.entries[idx];
        if (entries.extended() && !L2Entry.isCompressed(e)) {
            writeSubclusters(t, idx, clusterOffset, in, src);
            return;
        }
        long off = inPlaceOffset(e, clusterOffset);
        if (off != 0) {
            if (!L2Entry.isCopied(e)) t.set(idx, e | L2Entry.COPIED);
            file.write(off + in, src);
            return;
        }
        ByteBuffer full;
        if (in == 0 && src.remaining() == clusterSize) {
            full = src;
        } else { // partial write into a new cluster: start from what the cluster reads as now
            full = ByteBuffer.wrap(clusterBuf);
            readFromEntry(e, t.bitmap(idx), clusterOffset, 0, full);
            full.position(in);
            full.put(src);
            full.clear();
        }
        long n = meta.allocateClusters(1);
        file.write(n, full);
        meta.noteFileEnd(n + clusterSize);
        t.set(idx, n | L2Entry.COPIED, L2Entry.ALLOC_BITS); // with extended entries: every subcluster allocated
        meta.release(e);
    }

    /**
     * {@link #writeCluster} for a standard extended entry. Only the subclusters the write touches
     * become allocated, so a write into a cluster that reads from the backing file copies nothing
     * from it but the rest of partly written subclusters; the others keep reading through. In place
     * when the image owns the host cluster; otherwise a new host cluster gets the written subclusters
     * (and, from a cluster shared with a snapshot, the other allocated ones), following the same
     * rules 1 and 3 of {@link Qcow2Metadata}.
     */
    private void writeSubclusters(L2Table t, int idx, long clusterOffset, int in, ByteBuffer src) throws IOException {
        long e = t.entries[idx], bitmap = t.bitmap(idx);
        long off = dataOffset(e, clusterOffset);
        entries.checkBitmap(e, bitmap, clusterOffset);
        int scBits = entries.subclusterBits();
        int end = in + src.remaining();
        int first = in >> scBits, last = (end - 1) >> scBits;
        int from = first << scBits, to = (last + 1) << scBits; // the touched subclusters
        long touched = L2Entry.subclusterMask(first, last);
        long updated = (bitmap | touched) & ~(touched << 32);
        // A partly written subcluster that was not allocated starts from what it reads as now.
        boolean fill = (in != from && L2Entry.subcluster(bitmap, first) != L2Entry.DATA)
                || (end != to && L2Entry.subcluster(bitmap, last) != L2Entry.DATA);
        ByteBuffer data = src;
        int at = in;
        if (fill) {
            data = ByteBuffer.wrap(clusterBuf, from, to - from);
            readFromEntry(e, bitmap, clusterOffset, from, data.duplicate());
            data.put(in, src, src.position(), src.remaining()); // wrap() is no slice: indexes are the array's
            at = from;
        }
        int length = data.remaining();
        if (off != 0 && (L2Entry.isCopied(e) || meta.refcount(off >> clusterBits) == 1)) {
            file.write(off + at, data);
            t.set(idx, e | L2Entry.COPIED, updated);
            src.position(src.limit());
            return;
        }
        long n = meta.allocateClusters(1);
        long keep = bitmap & L2Entry.ALLOC_BITS & ~touched;
        if (keep != 0) { // shared with a snapshot: the allocated subclusters the write leaves come along
            ByteBuffer whole = ByteBuffer.allocate(clusterSize);
            file.readZeroPadded(off, whole);
            whole.put(at, data, data.position(), data.remaining());
            file.write(n, whole.clear());
        } else {
            file.write(n + at, data); // the file may end inside the cluster, as QEMU leaves it
        }
        meta.noteFileEnd(n + at + length);
        t.set(idx, n | L2Entry.COPIED, updated);
        meta.release(e);
        src.position(src.limit());
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
            throw meta.markCorrupt(e);
        }
    }

    private void zeroClusters(long offset, long length, boolean discard) throws IOException {
        long end = offset + length;
        while (offset < end) {
            int in = (int) (offset & (clusterSize - 1));
            long n = Math.min(clusterSize - in, end - offset);
            boolean wholeCluster = in == 0 && (n == clusterSize || offset + n == header.size);
            if (!wholeCluster) {
                if (entries.extended()) {
                    zeroSubclusters(offset - in, in, (int) n);
                } else {
                    writeCluster(offset - in, in, ByteBuffer.allocate((int) n));
                }
                offset += n;
                continue;
            }
            long guestCluster = offset >> clusterBits;
            long l1Index = guestCluster >> l2Bits;
            boolean unallocate = backing == null || (discard && header.version < 3);
            if (unallocate && L2Entry.hostOffset(meta.l1()[(int) l1Index]) == 0) { // whole L2 range already unallocated
                long next = (l1Index + 1) << (l2Bits + clusterBits);
                offset = Math.min(end, next);
                continue;
            }
            if (!unallocate && header.version < 3) {
                writeCluster(offset, 0, ByteBuffer.allocate((int) n)); // v2 cannot mark zero clusters
                offset += n;
                continue;
            }
            L2Table t = meta.l2Table(l1Index, true);
            int idx = (int) (guestCluster & ((1 << l2Bits) - 1));
            long e = t.entries[idx], bitmap = t.bitmap(idx);
            long wanted = unallocate || entries.extended() ? 0 : L2Entry.ZERO;
            long wantedBitmap = unallocate || !entries.extended() ? 0 : L2Entry.ZERO_BITS;
            if (e != wanted || bitmap != wantedBitmap) {
                if (!L2Entry.isCompressed(e)) dataOffset(e, offset);
                t.set(idx, wanted, wantedBitmap);
                meta.release(e);
            }
            offset += n;
        }
    }

    /**
     * Zeroes {@code [in, in + length)} of one guest cluster of an image with extended entries: the
     * subclusters it covers whole change only in the bitmap (unallocated without a backing file,
     * else zero), the parts of subclusters at its ends are written. A host cluster left with no
     * allocated subcluster is released.
     */
    private void zeroSubclusters(long clusterOffset, int in, int length) throws IOException {
        int scBits = entries.subclusterBits(), scMask = (1 << scBits) - 1;
        int end = in + length;
        // [from, to): the subclusters the range covers whole; the disk's end also ends a subcluster.
        int from = (in + scMask) & ~scMask;
        int to = clusterOffset + end == header.size ? (end + scMask) & ~scMask : end & ~scMask;
        long guestCluster = clusterOffset >> clusterBits;
        L2Table t = meta.l2Table(guestCluster >> l2Bits, true);
        int idx = (int) (guestCluster & ((1 << l2Bits) - 1));
        if (from >= to || L2Entry.isCompressed(t.entries[idx])) { // no whole subcluster, or none to speak of
            writeCluster(clusterOffset, in, ByteBuffer.allocate(length));
            return;
        }
        if (in < from) writeCluster(clusterOffset, in, ByteBuffer.allocate(from - in));
        if (to < end) writeCluster(clusterOffset, to, ByteBuffer.allocate(end - to));
        t = meta.l2Table(guestCluster >> l2Bits, true); // the writes may have replaced it
        long e = t.entries[idx], bitmap = t.bitmap(idx);
        dataOffset(e, clusterOffset);
        entries.checkBitmap(e, bitmap, clusterOffset);
        long mask = L2Entry.subclusterMask(from >> scBits, (to >> scBits) - 1);
        long updated = bitmap & ~mask & ~(mask << 32);
        if (backing != null) updated |= mask << 32;
        if ((updated & L2Entry.ALLOC_BITS) == 0 && L2Entry.hostOffset(e) != 0) {
            t.set(idx, 0, updated); // nothing left in the host cluster
            meta.release(e);
        } else if (updated != bitmap) {
            t.set(idx, e, updated);
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
        int n = codec.compress(input, clusterSize, out, clusterSize);
        if (n < 0 || n > clusterSize - 512) {
            writeCluster(clusterOffset, 0, ByteBuffer.wrap(input, 0, clusterSize));
            return;
        }
        long guestCluster = clusterOffset >> clusterBits;
        L2Table t = meta.l2Table(guestCluster >> l2Bits, true);
        int idx = (int) (guestCluster & ((1 << l2Bits) - 1));
        long old = t.entries[idx];
        long off = meta.allocateBytes(n);
        file.write(off, ByteBuffer.wrap(out, 0, n)); // rule 1: the data before the entry
        decompressedEntry = -1; // a freed cluster may be reused here, with the very same descriptor
        meta.noteFileEnd(off + n);
        t.set(idx, entries.compressed(off, n), 0); // compressed clusters have no subclusters
        meta.release(old);
    }

    @Override
    public synchronized void flush() throws IOException {
        checkOpen();
        if (readOnly) return;
        meta.flush();
        file.sync();
    }

    // ---------------------------------------------------------------- snapshots, backing file

    public synchronized Qcow2Snapshot createSnapshot(String snapshotName) throws IOException {
        checkWritable();
        checkOpen();
        return snapshots.create(snapshotName);
    }

    public synchronized void deleteSnapshot(String idOrName) throws IOException {
        checkWritable();
        checkOpen();
        snapshots.delete(idOrName);
    }

    /** Reverts the disk to a snapshot: its L1 table becomes the active one (the snapshot stays). */
    public synchronized void applySnapshot(String idOrName) throws IOException {
        checkWritable();
        checkOpen();
        snapshots.apply(idOrName);
    }

    /**
     * Records a different backing file without copying data ("unsafe" rebase): for when the backing
     * file moved or was renamed, or the caller has made sure contents are equal. Null removes it.
     */
    public synchronized void setBackingFile(String backingFile, ImageFormat format) throws IOException {
        checkWritable();
        checkOpen();
        meta.setBackingFile(backingFile, format);
    }

    // ---------------------------------------------------------------- state, close

    private void checkWritable() throws IOException {
        BlockBackend.checkWritable(this);
        if (markedCorrupt()) {
            throw new ReadOnlyImageException(name + ": image is marked corrupt; check and repair it"
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
            meta.close();
        } finally {
            codec.close();
            try {
                file.close();
            } finally {
                if (backing != null) backing.close();
            }
        }
    }

    /** The image as {@link Qcow2Check} may see it; use it holding this image's lock. */
    CheckView checkView() {
        return new CheckView(meta, snapshots);
    }

    MetadataCache<L2Table> l2Cache() {
        return meta.l2Cache();
    }

    MetadataCache<Refcounts.Block> refcountCache() {
        return meta.refcounts().cache();
    }
}
