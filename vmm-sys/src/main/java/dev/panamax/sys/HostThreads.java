package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The calling host thread as Linux knows it: its thread id and the CPUs it may run on. Affinity is
 * per thread in Linux (a TID, not the process), and a new thread inherits its creator's: so each
 * VMM thread sets its own, first thing, rather than have another thread do it.
 */
public final class HostThreads {
    private HostThreads() {}

    /** glibc's cpu_set_t: the smallest mask sched_getaffinity accepts on any kernel Panamax meets. */
    private static final int MIN_MASK_BYTES = 128;

    /**
     * Lets the calling thread run only on {@code cpus} ({@code sched_setaffinity(0, ...)}).
     *
     * @throws IllegalArgumentException when {@code cpus} is empty
     * @throws NativeCallException when the kernel refuses (EINVAL: none of them is online or allowed to this process)
     */
    public static void pinCurrentThread(CpuSet cpus) {
        if (cpus.isEmpty()) {
            throw new IllegalArgumentException("a thread needs at least one CPU to run on");
        }
        long[] words = cpus.toWords();
        try (Arena arena = Arena.ofConfined()) {
            // At least cpu_set_t's size, more when a CPU number lies beyond it: the mask covers every CPU named.
            long bytes = Math.max(MIN_MASK_BYTES, (long) words.length * Long.BYTES);
            MemorySegment mask = arena.allocate(bytes, Long.BYTES);
            MemorySegment.copy(words, 0, mask, JAVA_LONG, 0, words.length);
            Libc.schedSetaffinityCurrentThread(mask);
        }
    }

    /** The CPUs the calling thread may run on ({@code sched_getaffinity(0, ...)}). */
    public static CpuSet currentAffinity() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mask = arena.allocate(CpuSet.MAX_CPUS / 8, Long.BYTES); // as large as any kernel's mask
            Libc.schedGetaffinityCurrentThread(mask); // glibc clears what the kernel did not write
            return CpuSet.ofWords(mask.toArray(JAVA_LONG));
        }
    }

    /** The calling thread's Linux thread id: {@code /proc/self/task/TID}. */
    public static int currentThreadId() {
        return Libc.gettid();
    }
}
