package dev.panamax.storage.qcow2;

import dev.panamax.storage.ImageFile;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.Qcow2Compression;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The qcow2 header (cluster 0): fixed fields, header extensions and the backing file name. Parsing
 * validates every field against the file and against the limits below before anything is allocated.
 */
final class Qcow2Header {
    static final int MAGIC = 0x514649fb; // "QFI\xfb"
    static final int V2_LENGTH = 72, V3_MIN_LENGTH = 104, V3_LENGTH = 112;
    static final int MIN_CLUSTER_BITS = 9, MAX_CLUSTER_BITS = 21;
    /** Extended L2 entries split a cluster into 32 subclusters of at least 512 bytes each (as QEMU requires). */
    static final int MIN_EXTL2_CLUSTER_BITS = 14;
    /** Same limits as QEMU, so images either tool writes the other can open. */
    static final long MAX_L1_BYTES = 32L << 20, MAX_REFTABLE_BYTES = 8L << 20;
    static final int MAX_SNAPSHOTS = 65536, MAX_BACKING_NAME = 1023;

    static final long INCOMPAT_DIRTY = 1, INCOMPAT_CORRUPT = 2, INCOMPAT_DATA_FILE = 4,
            INCOMPAT_COMPRESSION = 8, INCOMPAT_EXTL2 = 16;
    static final long COMPAT_LAZY_REFCOUNTS = 1;
    static final int EXT_END = 0, EXT_BACKING_FORMAT = 0xE2792ACA, EXT_FEATURE_NAMES = 0x6803f857;

    int version;
    int clusterBits;
    long size;
    int l1Size;
    long l1TableOffset;
    long refcountTableOffset;
    int refcountTableClusters;
    int nbSnapshots;
    long snapshotsOffset;
    long incompatible, compatible, autoclear;
    int refcountOrder = 4;
    Qcow2Compression compression = Qcow2Compression.ZLIB;
    String backingFile; // null when none
    String backingFormat; // null when not recorded
    /** Extensions we do not interpret, kept verbatim when the header is rewritten. */
    final List<byte[]> otherExtensions = new ArrayList<>();

    int clusterSize() {
        return 1 << clusterBits;
    }

    /** 128-bit L2 entries with subcluster bitmaps (incompatible feature bit 4). */
    boolean extendedL2() {
        return (incompatible & INCOMPAT_EXTL2) != 0;
    }

    /** log2 of the entries in one L2 table. */
    int l2Bits() {
        return l2Bits(clusterBits, extendedL2());
    }

    static int l2Bits(int clusterBits, boolean extendedL2) {
        return clusterBits - (extendedL2 ? 4 : 3); // 8- or 16-byte entries
    }

    /** L1 entries needed to map {@code size} bytes. */
    static long l1EntriesFor(long size, int clusterBits, int l2Bits) {
        long bytesPerL2 = 1L << (clusterBits + l2Bits);
        return (size + bytesPerL2 - 1) / bytesPerL2;
    }

    static long maxSize(int clusterBits, int l2Bits) {
        return (MAX_L1_BYTES / 8) << (clusterBits + l2Bits); // at most 2^61
    }

    static Qcow2Header read(ImageFile file) throws IOException {
        String name = file.path().toString();
        long fileSize = file.size();
        if (fileSize < V2_LENGTH) {
            throw new InvalidImageException(name + ": file is " + fileSize + " bytes, too short for a qcow2 header");
        }
        ByteBuffer b = ByteBuffer.allocate((int) Math.min(fileSize, 4096));
        file.readFully(0, b, "qcow2 header");
        b.flip();
        int bits = b.getInt(20);
        if (bits > 12 && bits <= MAX_CLUSTER_BITS && fileSize > 4096) { // header area may span the whole cluster
            b = ByteBuffer.allocate((int) Math.min(fileSize, 1 << bits));
            file.readFully(0, b, "qcow2 header");
            b.flip();
        }
        Qcow2Header h = new Qcow2Header();
        if (b.getInt(0) != MAGIC) throw new InvalidImageException(name + ": not a qcow2 image (bad magic)");
        h.version = b.getInt(4);
        if (h.version != 2 && h.version != 3) {
            throw new InvalidImageException(name + ": qcow2 version " + h.version + " is not supported (only 2 and 3)");
        }
        long backingOffset = b.getLong(8);
        int backingSize = b.getInt(16);
        h.clusterBits = b.getInt(20);
        if (h.clusterBits < MIN_CLUSTER_BITS || h.clusterBits > MAX_CLUSTER_BITS) {
            throw new InvalidImageException(name + ": cluster_bits " + Integer.toUnsignedString(h.clusterBits)
                    + " is outside the valid range " + MIN_CLUSTER_BITS + ".." + MAX_CLUSTER_BITS);
        }
        int cs = h.clusterSize();
        h.size = b.getLong(24);
        int crypt = b.getInt(32);
        if (crypt != 0) throw new InvalidImageException(name + ": encrypted qcow2 images are not supported");
        h.l1Size = b.getInt(36);
        h.l1TableOffset = b.getLong(40);
        h.refcountTableOffset = b.getLong(48);
        h.refcountTableClusters = b.getInt(56);
        h.nbSnapshots = b.getInt(60);
        h.snapshotsOffset = b.getLong(64);
        int headerLength = V2_LENGTH;
        if (h.version == 3) {
            if (fileSize < V3_MIN_LENGTH) throw new InvalidImageException(name + ": file too short for a qcow2 v3 header");
            h.incompatible = b.getLong(72);
            h.compatible = b.getLong(80);
            h.autoclear = b.getLong(88);
            h.refcountOrder = b.getInt(96);
            headerLength = b.getInt(100);
            if (headerLength < V3_MIN_LENGTH || headerLength > cs || headerLength > b.limit() || headerLength % 8 != 0) {
                throw new InvalidImageException(name + ": header_length " + Integer.toUnsignedString(headerLength)
                        + " is invalid (must be a multiple of 8 between 104 and the cluster size)");
            }
            int type = headerLength > 104 ? b.get(104) & 0xff : 0;
            h.compression = Qcow2Compression.ofCode(type);
            if (h.compression == null) {
                throw new InvalidImageException(name + ": compression type " + type
                        + " is not known (0 is zlib, 1 is zstd); it was written by a newer program");
            }
            // As in QEMU: the feature bit is set exactly when the type is not zlib, so old readers refuse the image.
            boolean bit = (h.incompatible & INCOMPAT_COMPRESSION) != 0;
            if (bit != (h.compression != Qcow2Compression.ZLIB)) {
                throw new InvalidImageException(name + ": compression type is " + h.compression.id() + " but incompatible"
                        + " feature bit 3 (compression type) is " + (bit ? "set" : "not set") + "; the header is corrupt");
            }
        }
        if (h.refcountOrder < 0 || h.refcountOrder > 6) {
            throw new InvalidImageException(name + ": refcount_order " + Integer.toUnsignedString(h.refcountOrder)
                    + " is outside the valid range 0..6");
        }
        long unknown = h.incompatible & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2);
        if ((unknown & INCOMPAT_DATA_FILE) != 0) {
            throw new InvalidImageException(name + ": images with an external data file are not supported");
        }
        if (unknown != 0) {
            throw new InvalidImageException(name + ": image uses unknown incompatible features (bits 0x"
                    + Long.toHexString(unknown) + "); it was written by a newer program");
        }

        if (h.extendedL2() && h.clusterBits < MIN_EXTL2_CLUSTER_BITS) {
            throw new InvalidImageException(name + ": image has extended L2 entries but " + cs + "-byte clusters; its 32"
                    + " subclusters would be smaller than 512 bytes (extended L2 entries need clusters of at least "
                    + (1 << MIN_EXTL2_CLUSTER_BITS) + " bytes)");
        }

        // Sizes and tables, checked against the file before anything is read or allocated.
        if (h.size < 0 || h.size > maxSize(h.clusterBits, h.l2Bits())) {
            throw new InvalidImageException(name + ": virtual size " + Long.toUnsignedString(h.size)
                    + " is larger than a qcow2 image with " + cs + "-byte clusters can address");
        }
        long needL1 = l1EntriesFor(h.size, h.clusterBits, h.l2Bits());
        if (h.l1Size < 0 || (long) h.l1Size * 8 > MAX_L1_BYTES) {
            throw new InvalidImageException(name + ": L1 table size " + Integer.toUnsignedString(h.l1Size) + " is too large");
        }
        if (h.l1Size < needL1) {
            throw new InvalidImageException(name + ": L1 table has " + h.l1Size + " entries but the virtual size "
                    + h.size + " needs " + needL1);
        }
        if (h.l1Size > 0) checkTable(name, "L1 table", h.l1TableOffset, (long) h.l1Size * 8, cs, fileSize);
        if (h.refcountTableClusters <= 0 || (long) h.refcountTableClusters * cs > MAX_REFTABLE_BYTES) {
            throw new InvalidImageException(name + ": refcount table of " + Integer.toUnsignedString(h.refcountTableClusters)
                    + " clusters is invalid (must be 1 to " + MAX_REFTABLE_BYTES / cs + ")");
        }
        checkTable(name, "refcount table", h.refcountTableOffset, (long) h.refcountTableClusters * cs, cs, fileSize);
        if (h.l1Size > 0 && overlaps(h.l1TableOffset, (long) h.l1Size * 8, h.refcountTableOffset,
                (long) h.refcountTableClusters * cs)) {
            throw new InvalidImageException(name + ": L1 table and refcount table overlap");
        }
        if (h.nbSnapshots < 0 || h.nbSnapshots > MAX_SNAPSHOTS) {
            throw new InvalidImageException(name + ": snapshot count " + Integer.toUnsignedString(h.nbSnapshots)
                    + " exceeds the limit of " + MAX_SNAPSHOTS);
        }
        if (h.nbSnapshots > 0 && (h.snapshotsOffset <= 0 || h.snapshotsOffset % cs != 0 || h.snapshotsOffset >= fileSize)) {
            throw new InvalidImageException(name + ": snapshot table offset 0x" + Long.toHexString(h.snapshotsOffset)
                    + " is not a cluster inside the file");
        }

        // Header extensions run from the end of the header to the backing file name (or the cluster end).
        long extEnd = Math.min(cs, b.limit());
        if (backingOffset != 0) {
            if (backingSize <= 0 || backingSize > MAX_BACKING_NAME || backingOffset < headerLength
                    || backingOffset > cs - backingSize || backingOffset + backingSize > b.limit()) {
                throw new InvalidImageException(name + ": backing file name (offset " + backingOffset + ", "
                        + Integer.toUnsignedString(backingSize) + " bytes) must lie inside the first cluster and be at most "
                        + MAX_BACKING_NAME + " bytes");
            }
            byte[] nameBytes = new byte[backingSize];
            b.get((int) backingOffset, nameBytes);
            for (int i = 0; i < backingSize; i++) {
                if (nameBytes[i] == 0) { // no path can hold one; QEMU would cut the name short there
                    throw new InvalidImageException(name + ": backing file name contains a NUL byte (byte " + i + " of "
                            + backingSize + ")");
                }
            }
            h.backingFile = new String(nameBytes, StandardCharsets.UTF_8);
            extEnd = backingOffset;
        }
        int pos = headerLength;
        while (pos + 8 <= extEnd) {
            int type = b.getInt(pos);
            int len = b.getInt(pos + 4);
            if (type == EXT_END) break;
            if (len < 0 || len > extEnd - pos - 8) {
                throw new InvalidImageException(name + ": header extension 0x" + Integer.toHexString(type) + " of "
                        + Integer.toUnsignedString(len) + " bytes runs past the header area");
            }
            byte[] data = new byte[len];
            b.get(pos + 8, data);
            if (type == EXT_BACKING_FORMAT) {
                h.backingFormat = new String(data, StandardCharsets.UTF_8);
            } else if (type != EXT_FEATURE_NAMES) { // we write no feature name table; QEMU does not need one
                ByteBuffer whole = ByteBuffer.allocate(8 + len).putInt(type).putInt(len).put(data);
                h.otherExtensions.add(whole.array());
            }
            pos += 8 + ((len + 7) & ~7);
        }
        return h;
    }

    static boolean overlaps(long aOff, long aLen, long bOff, long bLen) {
        return aOff < bOff + bLen && bOff < aOff + aLen;
    }

    /** A cluster-aligned table that must lie inside the file and not on the header cluster. */
    static void checkTable(String name, String what, long offset, long length, int clusterSize, long fileSize)
            throws InvalidImageException {
        if (offset <= 0 || offset % clusterSize != 0) {
            throw new InvalidImageException(name + ": " + what + " offset 0x" + Long.toHexString(offset)
                    + " is not a cluster boundary after the header");
        }
        if (offset > fileSize || length > fileSize - offset) {
            throw new InvalidImageException(name + ": " + what + " at offset 0x" + Long.toHexString(offset) + " ("
                    + length + " bytes) extends past the end of the file (" + fileSize + " bytes)");
        }
    }

    /** Encodes the whole header area (header, extensions, backing name) as it should appear in cluster 0. */
    ByteBuffer encode() throws InvalidImageException {
        int cs = clusterSize();
        ByteBuffer b = ByteBuffer.allocate(cs);
        int headerLength = version == 3 ? V3_LENGTH : V2_LENGTH;
        b.putInt(MAGIC).putInt(version);
        b.putLong(0).putInt(0); // backing name offset/size, patched below
        b.putInt(clusterBits).putLong(size).putInt(0).putInt(l1Size).putLong(l1TableOffset)
                .putLong(refcountTableOffset).putInt(refcountTableClusters).putInt(nbSnapshots).putLong(snapshotsOffset);
        if (version == 3) {
            // Autoclear bits we do not maintain (bitmaps, raw external data) must be cleared by a writer.
            b.putLong(incompatible).putLong(compatible).putLong(0).putInt(refcountOrder).putInt(headerLength);
            b.put((byte) compression.code()); // its incompatible bit is set by whoever chose the type
            b.position(headerLength);
        }
        try {
            if (backingFile != null && backingFormat != null) {
                byte[] f = backingFormat.getBytes(StandardCharsets.UTF_8);
                b.putInt(EXT_BACKING_FORMAT).putInt(f.length).put(f);
                b.position((b.position() + 7) & ~7);
            }
            for (byte[] ext : otherExtensions) {
                b.put(ext);
                b.position((b.position() + 7) & ~7);
            }
            b.putInt(EXT_END).putInt(0);
            if (backingFile != null) {
                byte[] n = backingFile.getBytes(StandardCharsets.UTF_8);
                if (n.length == 0 || n.length > MAX_BACKING_NAME) {
                    throw new InvalidImageException("backing file name must be 1 to " + MAX_BACKING_NAME + " bytes long");
                }
                b.putLong(8, b.position()).putInt(16, n.length);
                b.put(n);
            }
        } catch (java.nio.BufferOverflowException e) {
            throw new InvalidImageException("qcow2 header, its extensions and the backing file name do not fit in one "
                    + cs + "-byte cluster");
        }
        b.flip();
        return b;
    }
}
