package dev.panamax.api;

/**
 * A VM cannot be set up as asked: the kernel, initrd or command line cannot be booted, or this
 * host's KVM cannot be used. The message is one sentence saying what and why.
 */
public final class VirtualMachineException extends RuntimeException {
    public VirtualMachineException(String message, Throwable cause) {
        super(message, cause);
    }
}
