package dev.panamax.virtio.fs;

/**
 * How long the guest may keep what a share's server tells it, as virtiofsd's {@code cache=} option:
 * the validity of its entries and attributes, and the {@code open_flags} of OPEN and CREATE, which
 * say whether the guest's page cache holds the file's data.
 */
public enum CacheMode {
    /** One second of validity; the guest caches file data and drops it on open when the file changed. */
    AUTO(1, 0),
    /** No validity, and direct I/O: every read(2) and write(2) is a request; for a directory the host changes. */
    NONE(0, Fuse.FOPEN_DIRECT_IO),
    /** A day of validity, and the data cache kept across opens: for a directory only the guest changes. */
    ALWAYS(86_400, Fuse.FOPEN_KEEP_CACHE);

    private final long validSeconds;
    private final int openFlags;

    CacheMode(long validSeconds, int openFlags) {
        this.validSeconds = validSeconds;
        this.openFlags = openFlags;
    }

    /** The entry_valid and attr_valid of every reply that carries an entry or attributes. */
    public long validSeconds() {
        return validSeconds;
    }

    /** The open_flags of OPEN's and CREATE's replies (FOPEN_*). */
    int openFlags() {
        return openFlags;
    }
}
