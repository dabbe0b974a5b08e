package dev.panamax.storage.qcow2;

import java.io.IOException;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;

/**
 * A bounded cache of cluster-sized metadata read from or bound for the image file: L2 tables and
 * refcount blocks (one instance each). Entries are keyed by their host offset and dropped least
 * recently used first once the byte budget is reached, so memory stays bounded however large the
 * image is.
 *
 * <p>The cache never writes anything itself. A dirty entry is handed to the owner's {@link WriteBack}
 * before it is dropped; the owner decides what else must reach the disk first (see
 * {@link Qcow2Metadata} for the ordering rules). A write-back may write and sync, and it may use the
 * other cache, but it must not add entries to or remove them from this one.
 *
 * <p>An entry may be held across a call that loads other entries of the same cache only to read it:
 * it may have been evicted (and written back) meanwhile, and a change to it would then be lost. The
 * owners change entries right after looking them up.
 *
 * @param <T> the kind of entry
 */
final class MetadataCache<T extends MetadataCache.Entry> {
    /** Fewer entries than this and one request could evict the table it is working on. */
    static final int MIN_ENTRIES = 4;

    /** One cached cluster of metadata. */
    abstract static class Entry {
        /** Host offset of the cluster, the cache key. */
        final long offset;
        /** Changed in memory since it was read or last written. */
        boolean dirty;

        Entry(long offset, boolean dirty) {
            this.offset = offset;
            this.dirty = dirty;
        }
    }

    /** Makes a dirty entry safe to drop: on return it must be on disk (and clean). */
    @FunctionalInterface
    interface WriteBack<T> {
        void writeBack(T evicted) throws IOException;
    }

    private final LinkedHashMap<Long, T> entries = new LinkedHashMap<>(16, 0.75f, true);
    private final String what;
    private final int clusterSize;
    private final int capacity;
    private final WriteBack<T> writeBack;
    private long peakEntries;
    private long evictions;

    /**
     * @param what        what the entries are, for messages ("L2 table")
     * @param budgetBytes the most memory the entries may take; at least {@link #MIN_ENTRIES} clusters
     */
    MetadataCache(String what, int clusterBits, long budgetBytes, WriteBack<T> writeBack) {
        this.what = what;
        this.clusterSize = 1 << clusterBits;
        this.capacity = (int) Math.max(MIN_ENTRIES, Math.min(Integer.MAX_VALUE, budgetBytes >> clusterBits));
        this.writeBack = writeBack;
    }

    /** The entry for the cluster at {@code offset}, or null when it is not cached; counts as a use. */
    T get(long offset) {
        return entries.get(offset);
    }

    /**
     * Adds an entry (replacing one for the same cluster), first evicting the least recently used
     * entries until it fits the budget; dirty ones go through the write-back.
     */
    void put(T entry) throws IOException {
        if (!entries.containsKey(entry.offset)) {
            while (entries.size() >= capacity) {
                Iterator<T> eldest = entries.values().iterator();
                T victim = eldest.next();
                if (victim.dirty) {
                    writeBack.writeBack(victim);
                    if (victim.dirty) throw new IllegalStateException(what + " at 0x" + Long.toHexString(victim.offset)
                            + " is still dirty after its write-back");
                }
                entries.remove(victim.offset);
                evictions++;
            }
        }
        entries.put(entry.offset, entry);
        peakEntries = Math.max(peakEntries, entries.size());
    }

    /** Every cached entry, least recently used first; for writing back, not for changing the cache. */
    Collection<T> entries() {
        return entries.values();
    }

    boolean anyDirty() {
        for (T e : entries.values()) if (e.dirty) return true;
        return false;
    }

    /** Forgets every entry without writing any back: for metadata that has been replaced on disk. */
    void clear() {
        entries.clear();
    }

    /** The budget in bytes (whole clusters). */
    long budgetBytes() {
        return (long) capacity * clusterSize;
    }

    long residentBytes() {
        return (long) entries.size() * clusterSize;
    }

    /** The most memory the entries ever took at once. */
    long peakResidentBytes() {
        return peakEntries * clusterSize;
    }

    /** Entries dropped to stay within the budget. */
    long evictions() {
        return evictions;
    }
}
