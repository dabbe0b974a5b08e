package dev.panamax.storage;

/** A run of the virtual disk with one allocation state. */
public record Extent(long offset, long length, Kind kind) {

    public enum Kind {
        /** Stored in this image. */
        DATA,
        /** Reads as zeros, decided by this image (no data stored, backing file not consulted). */
        ZERO,
        /** Not described by this image: reads from the backing file, or zeros without one. */
        UNALLOCATED
    }

    public Extent {
        if (length <= 0) throw new IllegalArgumentException("empty extent at " + offset);
    }

    public long end() {
        return offset + length;
    }
}
