package dev.panamax.vm;

/** A device on the x86 I/O port bus. Offsets are relative to the base port it was registered at. */
public interface PortIoDevice {
    /** A guest IN of {@code size} bytes (1, 2 or 4); only the low {@code size} bytes of the result count. */
    int in(int offset, int size);

    /** A guest OUT of {@code size} bytes (1, 2 or 4). */
    void out(int offset, int size, int value);
}
