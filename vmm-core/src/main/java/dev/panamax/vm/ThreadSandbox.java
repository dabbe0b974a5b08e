package dev.panamax.vm;

import dev.panamax.kvm.KvmThreadRequests;
import dev.panamax.sys.Seccomp;
import dev.panamax.sys.SyscallProfile;
import dev.panamax.sys.Tap;
import java.util.HashSet;
import java.util.Objects;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Whether a VM's threads confine themselves with seccomp filters, and whom a forbidden call is
 * reported to. A vCPU and each device I/O thread call {@link #confineCurrentThread} first thing
 * with their {@link SyscallProfile}, which with the ioctl requests of that kind of thread makes
 * the filter; a thread that may be confined starts threads through {@link #start}, so they do not
 * inherit its filter.
 */
public final class ThreadSandbox {
    /** No filters: every thread may call anything. */
    public static final ThreadSandbox NONE = new ThreadSandbox(null);

    private final Consumer<Seccomp.Violation> onViolation;

    private ThreadSandbox(Consumer<Seccomp.Violation> onViolation) {
        this.onViolation = onViolation;
    }

    /** Filters on, each forbidden call reported to {@code onViolation} (on the seccomp supervisor thread). */
    public static ThreadSandbox reportingTo(Consumer<Seccomp.Violation> onViolation) {
        return new ThreadSandbox(Objects.requireNonNull(onViolation, "onViolation"));
    }

    public boolean enabled() {
        return onViolation != null;
    }

    /**
     * Confines the calling thread to {@code profile}'s system calls for the rest of its life; does
     * nothing when filters are off.
     *
     * @throws dev.panamax.sys.NativeCallException when the kernel refuses the filter
     */
    public void confineCurrentThread(SyscallProfile profile) {
        if (onViolation != null) {
            Seccomp.confineCurrentThread(profile, ioctlRequests(profile), onViolation);
        }
    }

    /** The ioctl requests a thread of {@code profile} makes: KVM's for a vCPU or a device, a tap's offloads for a vCPU or a NIC. */
    static Set<Long> ioctlRequests(SyscallProfile profile) {
        Set<Long> requests = new HashSet<>(profile == SyscallProfile.VCPU ? KvmThreadRequests.vcpu() : KvmThreadRequests.device());
        if (profile == SyscallProfile.VCPU || profile == SyscallProfile.NET) {
            requests.addAll(Tap.RUNNING_IOCTL_REQUESTS);
        }
        return Set.copyOf(requests);
    }

    /** Starts {@code thread} so that it does not inherit the calling thread's filter, if it has one. */
    public static void start(Thread thread) {
        Seccomp.start(thread);
    }
}
