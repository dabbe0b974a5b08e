package dev.panamax.kvm;

import static dev.panamax.kvm.KvmAbi.KVM_GET_CLOCK;
import static dev.panamax.kvm.KvmAbi.KVM_GET_CPUID2;
import static dev.panamax.kvm.KvmAbi.KVM_GET_DEBUGREGS;
import static dev.panamax.kvm.KvmAbi.KVM_GET_FPU;
import static dev.panamax.kvm.KvmAbi.KVM_GET_LAPIC;
import static dev.panamax.kvm.KvmAbi.KVM_GET_MP_STATE;
import static dev.panamax.kvm.KvmAbi.KVM_GET_MSRS;
import static dev.panamax.kvm.KvmAbi.KVM_GET_REGS;
import static dev.panamax.kvm.KvmAbi.KVM_GET_SREGS;
import static dev.panamax.kvm.KvmAbi.KVM_GET_TSC_KHZ;
import static dev.panamax.kvm.KvmAbi.KVM_GET_VCPU_EVENTS;
import static dev.panamax.kvm.KvmAbi.KVM_GET_XCRS;
import static dev.panamax.kvm.KvmAbi.KVM_GET_XSAVE;
import static dev.panamax.kvm.KvmAbi.KVM_GET_XSAVE2;
import static dev.panamax.kvm.KvmAbi.KVM_IOEVENTFD;
import static dev.panamax.kvm.KvmAbi.KVM_IRQFD;
import static dev.panamax.kvm.KvmAbi.KVM_IRQ_LINE;
import static dev.panamax.kvm.KvmAbi.KVM_RUN;
import static dev.panamax.kvm.KvmAbi.KVM_SET_CLOCK;
import static dev.panamax.kvm.KvmAbi.KVM_SET_CPUID2;
import static dev.panamax.kvm.KvmAbi.KVM_SET_DEBUGREGS;
import static dev.panamax.kvm.KvmAbi.KVM_SET_FPU;
import static dev.panamax.kvm.KvmAbi.KVM_SET_GSI_ROUTING;
import static dev.panamax.kvm.KvmAbi.KVM_SET_LAPIC;
import static dev.panamax.kvm.KvmAbi.KVM_SET_MP_STATE;
import static dev.panamax.kvm.KvmAbi.KVM_SET_MSRS;
import static dev.panamax.kvm.KvmAbi.KVM_SET_REGS;
import static dev.panamax.kvm.KvmAbi.KVM_SET_SIGNAL_MASK;
import static dev.panamax.kvm.KvmAbi.KVM_SET_SREGS;
import static dev.panamax.kvm.KvmAbi.KVM_SET_TSC_KHZ;
import static dev.panamax.kvm.KvmAbi.KVM_SET_VCPU_EVENTS;
import static dev.panamax.kvm.KvmAbi.KVM_SET_XCRS;
import static dev.panamax.kvm.KvmAbi.KVM_SET_XSAVE;

import java.util.Set;

/**
 * The KVM ioctl requests each kind of VMM thread makes once it runs guest code or serves a queue:
 * what its seccomp filter lets {@code ioctl} do. Everything else KVM offers (a new VM or vCPU, the
 * irqchip's creation, the supported CPUID, memory slots, the dirty log, the VM's saved state) is
 * done by the threads that build, snapshot and migrate VMs, which are not filtered.
 */
public final class KvmThreadRequests {
    private KvmThreadRequests() {}

    /**
     * Interrupts a device raises (KVM_IRQ_LINE for legacy lines; KVM_SET_GSI_ROUTING and KVM_IRQFD
     * when a queue first signals an MSI-X vector the guest has written) and the ioeventfds of its
     * queues' notify addresses (KVM_IOEVENTFD, when the guest places a BAR).
     */
    private static final Set<Long> DEVICE = Set.of(KVM_IRQ_LINE, KVM_SET_GSI_ROUTING, KVM_IRQFD, KVM_IOEVENTFD);

    /**
     * A vCPU's: KVM_RUN and every request on its own fd (its registers, its state for a snapshot,
     * the signal mask of its kicks), the guest's clock (a pause and resume), and what the devices
     * it emulates on its exits do ({@link #DEVICE}: PCI configuration and MSI-X table writes come
     * through a vCPU).
     */
    private static final Set<Long> VCPU = Set.of(KVM_RUN, KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS,
            KVM_GET_FPU, KVM_SET_FPU, KVM_GET_MSRS, KVM_SET_MSRS, KVM_GET_LAPIC, KVM_SET_LAPIC, KVM_GET_CPUID2, KVM_SET_CPUID2,
            KVM_GET_MP_STATE, KVM_SET_MP_STATE, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS,
            KVM_GET_XSAVE, KVM_GET_XSAVE2, KVM_SET_XSAVE, KVM_GET_XCRS, KVM_SET_XCRS, KVM_GET_TSC_KHZ, KVM_SET_TSC_KHZ,
            KVM_SET_SIGNAL_MASK, KVM_GET_CLOCK, KVM_SET_CLOCK,
            KVM_IRQ_LINE, KVM_SET_GSI_ROUTING, KVM_IRQFD, KVM_IOEVENTFD);

    /** The requests of a vCPU thread. */
    public static Set<Long> vcpu() {
        return VCPU;
    }

    /** The requests of a device's I/O thread (a queue's, or a device's host-side thread). */
    public static Set<Long> device() {
        return DEVICE;
    }
}
