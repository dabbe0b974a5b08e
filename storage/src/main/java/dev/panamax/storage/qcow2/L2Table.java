package dev.panamax.storage.qcow2;

import java.nio.ByteBuffer;
import java.nio.LongBuffer;

/**
 * An L2 table in memory: one entry (see {@link L2Entry}) per guest cluster of the range one L1 entry
 * maps, and with extended L2 entries one subcluster bitmap per entry (interleaved on disk).
 */
final class L2Table extends MetadataCache.Entry {
    final long[] entries;
    /** Subcluster bitmaps, or null when entries are not extended. */
    final long[] bitmaps;

    L2Table(long offset, long[] entries, long[] bitmaps, boolean dirty) {
        super(offset, dirty);
        this.entries = entries;
        this.bitmaps = bitmaps;
    }

    /** A table as it is on disk: {@code cluster} holds 8-byte entries, or 16-byte entry and bitmap pairs. */
    static L2Table decode(long offset, ByteBuffer cluster, boolean extended) {
        LongBuffer words = cluster.asLongBuffer();
        if (!extended) {
            long[] e = new long[words.remaining()];
            words.get(e);
            return new L2Table(offset, e, null, false);
        }
        int n = words.remaining() / 2;
        long[] e = new long[n], b = new long[n];
        for (int i = 0; i < n; i++) {
            e[i] = words.get();
            b[i] = words.get();
        }
        return new L2Table(offset, e, b, false);
    }

    /** An empty table of {@code entries} entries. */
    static L2Table empty(long offset, int entries, boolean extended) {
        return new L2Table(offset, new long[entries], extended ? new long[entries] : null, true);
    }

    /** The table as it goes to disk. */
    ByteBuffer encode() {
        ByteBuffer b = ByteBuffer.allocate(entries.length * (bitmaps == null ? 8 : 16));
        for (int i = 0; i < entries.length; i++) {
            b.putLong(entries[i]);
            if (bitmaps != null) b.putLong(bitmaps[i]);
        }
        return b.flip();
    }

    /** The subcluster bitmap of entry {@code index} (0 without extended entries). */
    long bitmap(int index) {
        return bitmaps == null ? 0 : bitmaps[index];
    }

    /** Changes one entry, keeping its bitmap; the table reaches the disk with the next metadata flush. */
    void set(int index, long entry) {
        entries[index] = entry;
        dirty = true;
    }

    /** Changes one entry and its subcluster bitmap (ignored without extended entries). */
    void set(int index, long entry, long bitmap) {
        entries[index] = entry;
        if (bitmaps != null) bitmaps[index] = bitmap;
        dirty = true;
    }
}
