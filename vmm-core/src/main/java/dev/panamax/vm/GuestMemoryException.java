package dev.panamax.vm;

/** A guest-physical access outside guest RAM. Thrown before any host memory is touched. */
public final class GuestMemoryException extends RuntimeException {
    private final long address;
    private final long length;

    public GuestMemoryException(long address, long length) {
        super(String.format("guest-physical range [0x%x, +0x%x) is not inside guest memory", address, length));
        this.address = address;
        this.length = length;
    }

    public long address() {
        return address;
    }

    public long length() {
        return length;
    }
}
