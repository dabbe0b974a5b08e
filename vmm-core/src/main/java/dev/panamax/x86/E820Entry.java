package dev.panamax.x86;

/** One entry of the guest's physical memory map, as the zero page and PVH's memmap both carry it. */
public record E820Entry(long address, long size, int type) {
    public static final int RAM = 1;
    public static final int RESERVED = 2;

    public long end() {
        return address + size;
    }
}
