package dev.panamax.sys;

/**
 * A failed libc or KVM call made while setting something up (opening a device, creating a VM or a
 * vCPU, mapping memory): names the call (for an ioctl, the request's name) and the errno, as both
 * its symbolic name and its description, e.g. {@code ioctl(KVM_CREATE_VM) failed: EINVAL (Invalid
 * argument)}. Unchecked: such a failure ends the setup. A failed transfer on a data-path descriptor
 * is the checked {@link NativeIoException} instead.
 */
public final class NativeCallException extends RuntimeException {
    private final String call;
    private final int errno;

    public NativeCallException(String call, int errno) {
        this(call, errno, null);
    }

    /** With {@code hint}, a sentence saying what to do, after the errno; null for none. */
    public NativeCallException(String call, int errno, String hint) {
        super(message(call, errno, hint));
        this.call = call;
        this.errno = errno;
    }

    /** The sentence both native exceptions carry: the call, the errno's name and description, and the hint. */
    static String message(String call, int errno, String hint) {
        return call + " failed: " + Libc.errnoName(errno) + " (" + Libc.errnoDescription(errno) + ")" + (hint == null ? "" : ": " + hint);
    }

    /** The call that failed, e.g. {@code ioctl(KVM_RUN)} or {@code open(/dev/kvm)}. */
    public String call() {
        return call;
    }

    /** The errno value the call left, e.g. {@link Libc#EINVAL}. */
    public int errno() {
        return errno;
    }

    /** The errno's symbolic name, e.g. {@code EEXIST}. */
    public String errnoName() {
        return Libc.errnoName(errno);
    }
}
