package dev.panamax.sys;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The host kernel's random bytes, from {@code getrandom(2)} (the urandom source: it blocks only
 * until the kernel's pool is first initialised, which a booted host has long passed). Where libc or
 * the kernel lacks getrandom (glibc before 2.25, Linux before 3.17: ENOSYS), from {@code
 * /dev/urandom}, which gives the same bytes. Thread-safe.
 */
public final class HostRandom {
    private static final Path URANDOM = Path.of("/dev/urandom");
    /** Set once getrandom turned out missing in the kernel; then every fill reads /dev/urandom. */
    private static volatile boolean kernelLacksGetrandom;

    private HostRandom() {}

    /**
     * Fills {@code target} (native memory, such as a guest buffer) with random bytes.
     *
     * @throws NativeCallException when getrandom fails for another reason than its absence (which
     *                             no documented errno of the urandom source is)
     * @throws UncheckedIOException when the /dev/urandom fallback cannot be read
     */
    public static void fill(MemorySegment target) {
        long done = 0;
        while (done < target.byteSize()) {
            if (!Libc.hasGetrandom() || kernelLacksGetrandom) {
                fillFromUrandom(target.asSlice(done));
                return;
            }
            long n = Libc.getrandom(target.asSlice(done));
            if (n == -Libc.ENOSYS) {
                kernelLacksGetrandom = true;
            } else if (n == -Libc.EINTR) {
                continue; // a signal before any byte was written: ask again
            } else if (n < 0) {
                throw new NativeCallException("getrandom(" + (target.byteSize() - done) + " bytes)", (int) -n);
            } else {
                done += n; // a large request may be cut short: the loop asks for the rest
            }
        }
    }

    /** Whether fills come from getrandom rather than /dev/urandom. */
    public static boolean usesGetrandom() {
        return Libc.hasGetrandom() && !kernelLacksGetrandom;
    }

    private static void fillFromUrandom(MemorySegment target) {
        try (FileChannel urandom = FileChannel.open(URANDOM, StandardOpenOption.READ)) {
            ByteBuffer buffer = target.asByteBuffer();
            while (buffer.hasRemaining()) {
                if (urandom.read(buffer) < 0) {
                    throw new IOException("end of file");
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read random bytes from " + URANDOM + ": " + e.getMessage(), e);
        }
    }
}
