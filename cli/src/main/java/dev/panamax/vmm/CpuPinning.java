package dev.panamax.vmm;

import dev.panamax.sys.CpuSet;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Where a VM's threads run on the host: each pinned vCPU's host CPUs, and the host CPUs of the
 * device I/O threads. Checked by {@link VmRules#cpuPinning}.
 *
 * @param vcpus host CPUs by vCPU index; a vCPU not in the map is not pinned
 * @param ioThreads the device I/O threads' host CPUs, or null for none given
 */
public record CpuPinning(Map<Integer, CpuSet> vcpus, CpuSet ioThreads) {
    /** Nothing pinned: every thread runs wherever the process may. */
    public static final CpuPinning NONE = new CpuPinning(Map.of(), null);

    public CpuPinning {
        vcpus = Map.copyOf(Objects.requireNonNull(vcpus, "vcpus"));
    }

    public boolean isNone() {
        return vcpus.isEmpty() && ioThreads == null;
    }

    /** As {@code run --cpus} writes it after the count: {@code 0@[2],1@[3],io@[0-1]}; empty for none. */
    @Override
    public String toString() {
        StringBuilder text = new StringBuilder();
        new TreeMap<>(vcpus).forEach((vcpu, cpus) -> text.append(text.isEmpty() ? "" : ",").append(vcpu).append("@[").append(cpus).append(']'));
        if (ioThreads != null) {
            text.append(text.isEmpty() ? "" : ",").append("io@[").append(ioThreads).append(']');
        }
        return text.toString();
    }
}
