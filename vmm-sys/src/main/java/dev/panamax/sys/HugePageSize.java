package dev.panamax.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The sizes of hugetlb pages guest memory can be mapped from ({@code MAP_HUGETLB}), with the
 * host's pool of each: pages must be reserved beforehand ({@code /proc/sys/vm/nr_hugepages} for
 * 2 MiB pages), and a mapping takes its pages from the free ones.
 */
public enum HugePageSize {
    /** 2 MiB, Firecracker's {@code "2M"}. */
    SIZE_2M("2M", 21, Libc.MAP_HUGE_2MB),
    /** 1 GiB, where the CPU and the kernel have them. */
    SIZE_1G("1G", 30, Libc.MAP_HUGE_1GB);

    /** The knob that reserves pages of the host's default huge page size (2 MiB on x86-64, unless changed at boot). */
    public static final Path NR_HUGEPAGES = Path.of("/proc/sys/vm/nr_hugepages");

    private final String label;
    private final int shift;
    private final int mapFlag;

    HugePageSize(String label, int shift, int mapFlag) {
        this.label = label;
        this.shift = shift;
        this.mapFlag = mapFlag;
    }

    /** As Firecracker and Panamax's options write it: {@code 2M}, {@code 1G}. */
    public String label() {
        return label;
    }

    public long bytes() {
        return 1L << shift;
    }

    /** MAP_HUGETLB with this size's MAP_HUGE_* bits. */
    int mapFlags() {
        return Libc.MAP_HUGETLB | mapFlag;
    }

    /** {@code 2M} or {@code 1G} (case-insensitive); null for another text. */
    public static HugePageSize ofLabel(String text) {
        for (HugePageSize size : values()) {
            if (size.label.equalsIgnoreCase(text)) {
                return size;
            }
        }
        return null;
    }

    /** This size's pool in sysfs, e.g. {@code /sys/kernel/mm/hugepages/hugepages-2048kB}. */
    public Path pool() {
        return Path.of("/sys/kernel/mm/hugepages/hugepages-" + (bytes() >> 10) + "kB");
    }

    /** Whether the host's kernel has pages of this size at all. */
    public boolean onHost() {
        return Files.isDirectory(pool());
    }

    /** Where pages of this size are reserved: {@link #NR_HUGEPAGES} when this is the default size, else the pool's own knob. */
    public Path reserveKnob() {
        return defaultSize() == this ? NR_HUGEPAGES : pool().resolve("nr_hugepages");
    }

    /** The host's default huge page size (meminfo's {@code Hugepagesize}), or null when unknown. */
    private static HugePageSize defaultSize() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("Hugepagesize:")) {
                    long kib = Long.parseLong(line.replaceAll("\\D+", ""));
                    for (HugePageSize size : values()) {
                        if (size.bytes() >> 10 == kib) {
                            return size;
                        }
                    }
                }
            }
        } catch (IOException | NumberFormatException e) {
            // unknown: name the pool's own knob
        }
        return null;
    }

    /**
     * Pages of this size a new mapping can have now: the pool's free pages less those reserved by
     * mappings that have not touched them yet.
     *
     * @throws IOException when the pool's counters cannot be read (no such pool)
     */
    public long availablePages() throws IOException {
        return counter("free_hugepages") - counter("resv_hugepages");
    }

    /** Pages of this size reserved on the host (the pool's {@code nr_hugepages}). */
    public long reservedPages() throws IOException {
        return counter("nr_hugepages");
    }

    private long counter(String name) throws IOException {
        Path file = pool().resolve(name);
        String text = Files.readString(file).strip();
        try {
            return Long.parseLong(text);
        } catch (NumberFormatException e) {
            throw new IOException(file + " holds '" + text + "', not a number", e);
        }
    }

    /**
     * Checks that {@code bytes} of memory can be mapped from pages of this size now: a whole number of
     * pages, the host has the size, and enough of its reserved pages are free. The message of a
     * shortage names the pages needed and the command that reserves them.
     *
     * @throws IllegalStateException when they cannot
     */
    public void requireAvailable(long bytes) {
        if (bytes % bytes() != 0) {
            throw new IllegalStateException(bytes + " bytes is not a whole number of " + label + " huge pages");
        }
        if (!onHost()) {
            throw new IllegalStateException("this host has no " + label + " huge pages (no " + pool() + ")");
        }
        long needed = bytes / bytes();
        long available;
        long reserved;
        try {
            available = availablePages();
            reserved = reservedPages();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read the host's " + label + " huge page pool: " + e.getMessage(), e);
        }
        if (available < needed) {
            throw new IllegalStateException(String.format("guest memory on %s huge pages needs %d free pages, and the host has %d"
                    + " (%s, less %s); reserve more before starting the VM: echo %d > %s",
                    label, needed, Math.max(available, 0), pool().resolve("free_hugepages"), pool().resolve("resv_hugepages"),
                    reserved + needed - Math.max(available, 0), reserveKnob()));
        }
    }
}
