package dev.panamax.kvm;

/** KVM cannot be used on this host; the message says why and what to do. */
public final class KvmUnavailableException extends RuntimeException {
    public KvmUnavailableException(String message) {
        super(message);
    }
}
