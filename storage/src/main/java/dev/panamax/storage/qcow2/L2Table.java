package dev.panamax.storage.qcow2;

/** An L2 table in memory: one entry (see {@link L2Entry}) per guest cluster of the range one L1 entry maps. */
final class L2Table extends MetadataCache.Entry {
    final long[] entries;

    L2Table(long offset, long[] entries, boolean dirty) {
        super(offset, dirty);
        this.entries = entries;
    }

    /** Changes one entry; the table reaches the disk with the next metadata flush. */
    void set(int index, long entry) {
        entries[index] = entry;
        dirty = true;
    }
}
