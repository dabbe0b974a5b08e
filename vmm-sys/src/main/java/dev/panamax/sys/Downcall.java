package dev.panamax.sys;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.invoke.MethodHandle;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A C function's downcall handle, linked at its first use. The JDK takes milliseconds to link each
 * signature (it generates classes for it) and a command such as {@code image info} needs a few of
 * the dozens {@link Libc} declares; a thread about to be confined by seccomp links them all first
 * ({@link #linkAll}), since linking loads classes, which the filter may forbid.
 */
final class Downcall {
    private static final List<Downcall> ALL = new CopyOnWriteArrayList<>();

    private final String name;
    private final FunctionDescriptor descriptor;
    private final Linker.Option[] options;
    private volatile MethodHandle handle; // two threads may both link it: the same handle either way

    Downcall(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        this.name = name;
        this.descriptor = descriptor;
        this.options = options;
        ALL.add(this);
    }

    /** Whether this C library has the function (glibc adds some in later versions). */
    boolean available() {
        return Libc.lookup(name).isPresent();
    }

    /** @throws java.util.NoSuchElementException when the C library lacks the function */
    MethodHandle handle() {
        MethodHandle h = handle;
        if (h == null) {
            h = Libc.downcall(name, descriptor, options);
            handle = h;
        }
        return h;
    }

    /** Links every downcall declared so far that this C library has. */
    static void linkAll() {
        for (Downcall d : ALL) {
            if (d.available()) {
                d.handle();
            }
        }
    }
}
