package dev.panamax.storage;

/**
 * What a new image should look like, for every format: each takes the fields that apply to it
 * (qcow2: cluster size, backing file, lazy refcounts, version, refcount width, compression type,
 * extended L2 entries; vhd: fixed or dynamic, and vdi: static or dynamic, both by {@code vhdFixed}).
 * {@code backingFile} is recorded as given (relative or absolute).
 */
public record CreateOptions(ImageFormat format, long size, int clusterSize, String backingFile,
        ImageFormat backingFormat, boolean lazyRefcounts, boolean vhdFixed, int qcow2Version, int refcountBits,
        Qcow2Compression compression, boolean extendedL2) {
    public static CreateOptions of(ImageFormat format, long size) {
        return new CreateOptions(format, size, 65536, null, null, false, false, 3, 16, Qcow2Compression.ZLIB, false);
    }

    public CreateOptions withSize(long s) {
        return new CreateOptions(format, s, clusterSize, backingFile, backingFormat, lazyRefcounts, vhdFixed, qcow2Version,
                refcountBits, compression, extendedL2);
    }

    public CreateOptions withClusterSize(int c) {
        return new CreateOptions(format, size, c, backingFile, backingFormat, lazyRefcounts, vhdFixed, qcow2Version,
                refcountBits, compression, extendedL2);
    }

    public CreateOptions withBacking(String file, ImageFormat f) {
        return new CreateOptions(format, size, clusterSize, file, f, lazyRefcounts, vhdFixed, qcow2Version,
                refcountBits, compression, extendedL2);
    }

    public CreateOptions withLazyRefcounts(boolean lazy) {
        return new CreateOptions(format, size, clusterSize, backingFile, backingFormat, lazy, vhdFixed, qcow2Version,
                refcountBits, compression, extendedL2);
    }

    public CreateOptions withVhdFixed(boolean fixed) {
        return new CreateOptions(format, size, clusterSize, backingFile, backingFormat, lazyRefcounts, fixed, qcow2Version,
                refcountBits, compression, extendedL2);
    }

    public CreateOptions withQcow2Version(int version) {
        return new CreateOptions(format, size, clusterSize, backingFile, backingFormat, lazyRefcounts, vhdFixed, version,
                refcountBits, compression, extendedL2);
    }

    public CreateOptions withRefcountBits(int bits) {
        return new CreateOptions(format, size, clusterSize, backingFile, backingFormat, lazyRefcounts, vhdFixed, qcow2Version,
                bits, compression, extendedL2);
    }

    /** qcow2: how compressed clusters are compressed (zlib by default). */
    public CreateOptions withCompression(Qcow2Compression c) {
        return new CreateOptions(format, size, clusterSize, backingFile, backingFormat, lazyRefcounts, vhdFixed, qcow2Version,
                refcountBits, c, extendedL2);
    }

    /** qcow2: 128-bit L2 entries with 32 subclusters per cluster (needs version 3 and 16 KiB clusters or more). */
    public CreateOptions withExtendedL2(boolean on) {
        return new CreateOptions(format, size, clusterSize, backingFile, backingFormat, lazyRefcounts, vhdFixed, qcow2Version,
                refcountBits, compression, on);
    }
}
