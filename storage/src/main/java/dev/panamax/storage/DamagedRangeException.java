package dev.panamax.storage;

/**
 * A read met damage confined to one range of the virtual disk: a qcow2 L2 table or data cluster that
 * cannot be read or decoded, a VHD block outside the file. The rest of the disk may still be
 * readable, so a salvaging copy zeroes exactly {@code [offset, offset + length)} and goes on; any other
 * reader fails here as for any corruption.
 */
public class DamagedRangeException extends ImageCorruptException {
    private final long offset, length;
    private final String reason;

    /**
     * @param offset where the damaged range starts in the virtual disk
     * @param length its length in bytes (clipped by the reader to the disk's size)
     * @param reason the sentence saying what is wrong there, as the reader would otherwise report it
     */
    public DamagedRangeException(long offset, long length, String reason, Throwable cause) {
        super(reason, cause);
        if (offset < 0 || length <= 0) throw new IllegalArgumentException("empty damaged range at " + offset);
        this.offset = offset;
        this.length = length;
        this.reason = reason;
    }

    public long offset() {
        return offset;
    }

    public long length() {
        return length;
    }

    public long end() {
        return offset + length;
    }

    public String reason() {
        return reason;
    }
}
