package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * An eventfd: a counter the kernel can signal (ioeventfd) or wait on (irqfd). {@link #signal()} may
 * be called from any thread; {@link #read()} from one thread at a time (the device thread that owns
 * it), so neither allocates.
 */
public final class EventFd extends Fd {
    // Freed by the GC, not by close(): a reader may still be blocked in read() when another thread closes.
    private final Arena arena = Arena.ofAuto();
    private final MemorySegment writeBuffer = arena.allocate(JAVA_LONG);
    private final MemorySegment writeState = Libc.allocateCallState(arena);
    private final MemorySegment readBuffer = arena.allocate(JAVA_LONG);
    private final MemorySegment readState = Libc.allocateCallState(arena);

    private EventFd(int fd) {
        super(fd, "eventfd");
    }

    /** A new eventfd; a non-blocking one's {@link #read()} returns 0 when nothing was signalled. */
    public static EventFd create(boolean nonBlocking) {
        return new EventFd(Libc.eventfd(0, Libc.EFD_CLOEXEC | (nonBlocking ? Libc.EFD_NONBLOCK : 0)));
    }

    /** Adds 1 to the counter, waking a reader. */
    public synchronized void signal() {
        writeBuffer.set(JAVA_LONG, 0, 1L);
        if (Libc.writeRaw(writeState, fd(), writeBuffer) != 8) {
            throw new NativeCallException("write(eventfd)", Libc.errno(writeState));
        }
    }

    /** Takes the counter (resetting it to 0); blocks until it is non-zero unless non-blocking. */
    public long read() {
        while (true) {
            if (Libc.readRaw(readState, fd(), readBuffer) == 8) {
                return readBuffer.get(JAVA_LONG, 0);
            }
            int errno = Libc.errno(readState);
            if (errno == Libc.EAGAIN) {
                return 0;
            }
            if (errno != Libc.EINTR) {
                throw new NativeCallException("read(eventfd)", errno);
            }
        }
    }

}
