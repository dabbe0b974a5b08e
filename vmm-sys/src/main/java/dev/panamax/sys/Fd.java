package dev.panamax.sys;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * An owned file descriptor with an idempotent close. Using it after close throws rather than
 * reaching a number the kernel may already have handed to someone else.
 */
public class Fd implements AutoCloseable {
    private static final int CLOSED = -1;
    private final AtomicInteger fd;
    private final String what;

    protected Fd(int fd, String what) {
        if (fd < 0) {
            throw new IllegalArgumentException("invalid fd " + fd + " for " + what);
        }
        this.fd = new AtomicInteger(fd);
        this.what = what;
    }

    /** The raw number, for passing to the kernel (for example to KVM_IRQFD). */
    public final int fd() {
        int value = fd.get();
        if (value == CLOSED) {
            throw new IllegalStateException(what + " is closed");
        }
        return value;
    }

    public final boolean isOpen() {
        return fd.get() != CLOSED;
    }

    @Override
    public void close() {
        int value = fd.getAndSet(CLOSED);
        if (value != CLOSED) {
            Libc.close(value);
        }
    }

    @Override
    public String toString() {
        return what + "(fd " + fd.get() + ")";
    }
}
