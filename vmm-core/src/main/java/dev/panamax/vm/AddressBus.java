package dev.panamax.vm;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.function.Predicate;

/**
 * Devices keyed by address range, for the port I/O bus and the MMIO bus alike. Registration rejects
 * overlaps; lookups (on every vCPU exit) are a lock-free binary search that allocates nothing.
 *
 * @param <D> the device interface ({@link PortIoDevice} or {@link MmioDevice})
 */
public final class AddressBus<D> {

    /** A device occupying {@code [base, base + size)}. */
    public record Mapping<D>(long base, long size, D device, String name) {
        long end() {
            return base + size;
        }
    }

    private final String busName;
    private volatile Mapping<D>[] mappings = newArray(0);

    public AddressBus(String busName) {
        this.busName = busName;
    }

    @SuppressWarnings("unchecked")
    private static <D> Mapping<D>[] newArray(int n) {
        return (Mapping<D>[]) new Mapping<?>[n];
    }

    /**
     * Puts {@code device} at {@code [base, base + size)}.
     *
     * @throws IllegalArgumentException when the range is empty or overlaps another device's
     */
    public synchronized void register(long base, long size, D device, String name) {
        if (size <= 0 || base < 0 || base > Long.MAX_VALUE - size) {
            throw new IllegalArgumentException(String.format("%s: bad range for %s: base 0x%x size 0x%x", busName, name, base, size));
        }
        for (Mapping<D> m : mappings) {
            if (base < m.end() && m.base() < base + size) {
                throw new IllegalArgumentException(String.format("%s: %s at [0x%x, 0x%x) overlaps %s at [0x%x, 0x%x)",
                        busName, name, base, base + size, m.name(), m.base(), m.end()));
            }
        }
        List<Mapping<D>> all = new ArrayList<>(Arrays.asList(mappings));
        all.add(new Mapping<>(base, size, device, name));
        all.sort(Comparator.comparingLong(Mapping::base));
        mappings = all.toArray(newArray(0));
    }

    /** Removes every mapping of {@code device}; returns whether there was one. */
    public boolean unregister(D device) {
        return removeIf(m -> m.device() == device);
    }

    /** Removes the mapping that starts at {@code base}, whichever device it has; returns whether there was one. */
    public boolean unregisterAt(long base) {
        return removeIf(m -> m.base() == base);
    }

    private synchronized boolean removeIf(Predicate<Mapping<D>> unwanted) {
        List<Mapping<D>> kept = new ArrayList<>();
        for (Mapping<D> m : mappings) {
            if (!unwanted.test(m)) {
                kept.add(m);
            }
        }
        boolean removed = kept.size() != mappings.length;
        mappings = kept.toArray(newArray(0));
        return removed;
    }

    /** The mapping containing {@code address}, or null. */
    public Mapping<D> find(long address) {
        Mapping<D>[] m = mappings;
        int low = 0;
        int high = m.length - 1;
        while (low <= high) {
            int mid = (low + high) >>> 1;
            Mapping<D> candidate = m[mid];
            if (address < candidate.base()) {
                high = mid - 1;
            } else if (address >= candidate.end()) {
                low = mid + 1;
            } else {
                return candidate;
            }
        }
        return null;
    }

    public List<Mapping<D>> mappings() {
        return List.of(mappings);
    }
}
