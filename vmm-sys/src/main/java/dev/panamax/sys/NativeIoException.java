package dev.panamax.sys;

import java.io.IOException;

/**
 * A read, write or other transfer on a data-path descriptor (a disk image, a tap, a Unix stream)
 * that failed: names the call and its errno, as {@link NativeCallException} does, but checked, as
 * Netty's {@code Errors.NativeIoException} is, because such failures come from the world (a full
 * disk, a deleted interface, a peer gone) and the device that meets one must decide what the guest
 * sees.
 */
public final class NativeIoException extends IOException {
    private final String call;
    private final int errno;

    NativeIoException(String call, int errno) {
        this(call, errno, null);
    }

    /** With {@code hint}, a sentence saying what to do, after the errno; null for none. */
    NativeIoException(String call, int errno, String hint) {
        super(NativeCallException.message(call, errno, hint));
        this.call = call;
        this.errno = errno;
    }

    /** The call that failed, e.g. {@code pwritev(disk.qcow2)} or {@code read(tap tap0)}. */
    public String call() {
        return call;
    }

    /** The errno value the call left, e.g. {@link Libc#EIO}. */
    public int errno() {
        return errno;
    }
}
