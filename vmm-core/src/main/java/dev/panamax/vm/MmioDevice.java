package dev.panamax.vm;

/** A device in guest-physical address space. Offsets are relative to the base it was registered at. */
public interface MmioDevice {
    /** A guest read of {@code size} bytes (1 to 8); only the low {@code size} bytes of the result count. */
    long read(long offset, int size);

    /** A guest write of {@code size} bytes (1 to 8). */
    void write(long offset, int size, long value);
}
