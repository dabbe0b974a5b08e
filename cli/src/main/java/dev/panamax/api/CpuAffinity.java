package dev.panamax.api;

import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.IntStream;

/**
 * Which host CPUs a VM's threads may run on ({@code sched_setaffinity}): each vCPU's thread, and
 * the device I/O threads (virtio queue workers). Each thread pins itself before it runs guest code
 * or serves a queue. Checked when the VM is built: every vCPU index must exist and every CPU be
 * online on the host.
 *
 * <p>When vCPUs are pinned and the I/O threads are not given, the I/O threads run on the CPUs the
 * process could use when the VM was built (not on the CPUs of the vCPU that started them).
 *
 * @param vcpus host CPU numbers by vCPU index; a vCPU not in the map runs wherever the process may
 * @param ioThreads host CPU numbers for the device I/O threads; empty to leave them unpinned
 */
public record CpuAffinity(Map<Integer, Set<Integer>> vcpus, Set<Integer> ioThreads) {
    /** Nothing pinned. */
    public static final CpuAffinity NONE = new CpuAffinity(Map.of(), Set.of());

    public CpuAffinity {
        Objects.requireNonNull(vcpus, "vcpus");
        Objects.requireNonNull(ioThreads, "ioThreads");
        Map<Integer, Set<Integer>> copy = new TreeMap<>();
        vcpus.forEach((vcpu, cpus) -> {
            if (vcpu == null || vcpu < 0) {
                throw new IllegalArgumentException("vCPU index " + vcpu + " is negative; vCPUs count from 0");
            }
            if (cpus == null || cpus.isEmpty()) {
                throw new IllegalArgumentException("vCPU " + vcpu + " is given no host CPUs; give at least one");
            }
            copy.put(vcpu, checkedCpus(cpus));
        });
        vcpus = Map.copyOf(copy);
        ioThreads = checkedCpus(ioThreads);
    }

    private static Set<Integer> checkedCpus(Set<Integer> cpus) {
        for (Integer cpu : cpus) {
            if (cpu == null || cpu < 0) {
                throw new IllegalArgumentException("host CPU " + cpu + " is negative; host CPUs count from 0");
            }
        }
        return Set.copyOf(new TreeSet<>(cpus));
    }

    /** This affinity with vCPU {@code vcpu} pinned to {@code hostCpus}. */
    public CpuAffinity withVcpu(int vcpu, int... hostCpus) {
        Map<Integer, Set<Integer>> more = new TreeMap<>(vcpus);
        more.put(vcpu, Set.copyOf(IntStream.of(hostCpus).boxed().toList()));
        return new CpuAffinity(more, ioThreads);
    }

    /** This affinity with the device I/O threads pinned to {@code hostCpus}. */
    public CpuAffinity withIoThreads(int... hostCpus) {
        return new CpuAffinity(vcpus, Set.copyOf(IntStream.of(hostCpus).boxed().toList()));
    }

    public boolean isNone() {
        return vcpus.isEmpty() && ioThreads.isEmpty();
    }
}
