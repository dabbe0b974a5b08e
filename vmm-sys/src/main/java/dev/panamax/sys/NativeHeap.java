package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;

/**
 * The C library's heap, where the JVM's native allocations come from (every FFM segment Panamax
 * allocates, the JVM's own buffers). glibc gives each thread that allocates one of several arenas
 * and keeps the pages a freed chunk leaves in the middle of an arena: a VM's vCPU and device
 * threads leave such pages behind them when the VM ends.
 */
public final class NativeHeap {
    private NativeHeap() {}

    // int malloc_trim(size_t pad): glibc only.
    private static final Downcall MALLOC_TRIM = new Downcall("malloc_trim", FunctionDescriptor.of(JAVA_INT, JAVA_LONG));

    /**
     * Gives the kernel back the free pages of every arena ({@code malloc_trim(0)}). Returns whether
     * the C library could (false where it has no {@code malloc_trim}, as musl).
     */
    public static boolean trim() {
        if (!MALLOC_TRIM.available()) return false;
        try {
            int ignored = (int) MALLOC_TRIM.handle().invokeExact(0L); // 1 if memory was released, else 0: both fine
            return true;
        } catch (Throwable t) {
            throw new IllegalStateException("malloc_trim failed", t);
        }
    }
}
