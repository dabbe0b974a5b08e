package dev.panamax.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.BitSet;
import java.util.Objects;
import java.util.stream.IntStream;

/**
 * A set of host CPUs by number, written as Linux writes CPU lists ({@code 0-3,8,10-11}, as in
 * {@code /sys/devices/system/cpu/online} and {@code Cpus_allowed_list}). Immutable.
 */
public final class CpuSet {
    /** The kernel's largest NR_CPUS (CONFIG_NR_CPUS tops out at 8192): no host has a CPU numbered higher. */
    public static final int MAX_CPUS = 8192;
    /** Where Linux lists the CPUs that are online now. */
    public static final Path ONLINE = Path.of("/sys/devices/system/cpu/online");

    private final BitSet cpus;

    private CpuSet(BitSet cpus) {
        this.cpus = cpus;
    }

    /** The CPUs {@code numbers} names. */
    public static CpuSet of(int... numbers) {
        BitSet bits = new BitSet();
        for (int cpu : numbers) {
            if (cpu < 0 || cpu >= MAX_CPUS) {
                throw new IllegalArgumentException("CPU " + cpu + " is out of range: CPUs are numbered 0 to " + (MAX_CPUS - 1));
            }
            bits.set(cpu);
        }
        return new CpuSet(bits);
    }

    /**
     * A CPU list such as {@code 0-3,8}: numbers and ascending ranges, comma-separated, at least one
     * CPU. A malformed list is refused with a sentence that quotes it.
     */
    public static CpuSet parse(String list) {
        Objects.requireNonNull(list, "list");
        BitSet bits = new BitSet();
        String trimmed = list.strip();
        if (trimmed.isEmpty()) {
            throw new IllegalArgumentException("the CPU list is empty; write CPUs like 0-3,8");
        }
        for (String part : trimmed.split(",", -1)) {
            int dash = part.indexOf('-');
            int first = number(dash < 0 ? part : part.substring(0, dash), list);
            int last = dash < 0 ? first : number(part.substring(dash + 1), list);
            if (last < first) {
                throw new IllegalArgumentException("'" + list + "' is not a CPU list: the range " + part + " runs backwards");
            }
            bits.set(first, last + 1);
        }
        return new CpuSet(bits);
    }

    private static int number(String text, String list) {
        if (text.isEmpty() || text.length() > 5 || !text.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw new IllegalArgumentException("'" + list + "' is not a CPU list: write CPU numbers and ranges like 0-3,8");
        }
        int cpu = Integer.parseInt(text);
        if (cpu >= MAX_CPUS) {
            throw new IllegalArgumentException("'" + list + "' names CPU " + cpu + ", and CPUs are numbered 0 to " + (MAX_CPUS - 1));
        }
        return cpu;
    }

    /**
     * The CPUs online now, from {@link #ONLINE}.
     *
     * @throws IOException when the file cannot be read
     */
    public static CpuSet online() throws IOException {
        String text = Files.readString(ONLINE).strip();
        try {
            return parse(text);
        } catch (IllegalArgumentException e) {
            throw new IOException(ONLINE + " holds '" + text + "', which is not a CPU list", e);
        }
    }

    /** The CPUs the calling thread may run on now (sched_getaffinity). */
    public static CpuSet ofCurrentThread() {
        return HostThreads.currentAffinity();
    }

    public boolean contains(int cpu) {
        return cpu >= 0 && cpus.get(cpu);
    }

    /** The CPUs of this set that {@code other} lacks; empty when {@code other} has them all. */
    public CpuSet minus(CpuSet other) {
        BitSet rest = (BitSet) cpus.clone();
        rest.andNot(other.cpus);
        return new CpuSet(rest);
    }

    public boolean isEmpty() {
        return cpus.isEmpty();
    }

    /** The CPU numbers, ascending. */
    public IntStream stream() {
        return cpus.stream();
    }

    /** One above the highest CPU in the set (0 when empty). */
    int length() {
        return cpus.length();
    }

    /** The set as the kernel's bitmask: bit N of the array of unsigned longs for CPU N. */
    long[] toWords() {
        return cpus.toLongArray();
    }

    static CpuSet ofWords(long[] words) {
        return new CpuSet(BitSet.valueOf(words));
    }

    /** The set as a CPU list, ranges collapsed: {@code 0-3,8}. */
    @Override
    public String toString() {
        StringBuilder text = new StringBuilder();
        int cpu = cpus.nextSetBit(0);
        while (cpu >= 0) {
            int end = cpus.nextClearBit(cpu) - 1;
            if (!text.isEmpty()) {
                text.append(',');
            }
            text.append(cpu);
            if (end > cpu) {
                text.append('-').append(end);
            }
            cpu = cpus.nextSetBit(end + 1);
        }
        return text.toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof CpuSet other && cpus.equals(other.cpus);
    }

    @Override
    public int hashCode() {
        return cpus.hashCode();
    }
}
