package dev.panamax.vm;

import dev.panamax.kvm.Regs;

/**
 * Why a VM stopped running, reported once per VM.
 *
 * @param reason the kind of exit
 * @param vcpu the vCPU that caused it, or -1 when the host stopped the VM
 * @param detail a sentence with the specifics (the KVM exit data, the device error)
 * @param registers that vCPU's registers at the exit, or null when not taken
 */
public record VmExit(Reason reason, int vcpu, String detail, Regs registers) {

    public enum Reason {
        /** Every vCPU executed HLT with no interrupt controller to wake it: the end of a bare program. */
        HALTED(true),
        /** The guest powered off. */
        POWER_OFF(true),
        /** The guest asked for a reset (Panamax ends the VM rather than rebooting it). */
        RESET(true),
        /** The host stopped the VM. */
        STOPPED(true),
        /** The VM went on in another process: a live migration completed. */
        MIGRATED(true),
        /** A triple fault (KVM_EXIT_SHUTDOWN). */
        TRIPLE_FAULT(false),
        /** The guest kernel reported its panic through the pvpanic device. */
        GUEST_PANIC(false),
        /** The guest crashed: KVM's crash system event, or a kernel panic on the console before a reset (a guest without a pvpanic driver). */
        GUEST_CRASH(false),
        /** KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY). */
        FAIL_ENTRY(false),
        /** KVM failed internally, for example an instruction it could not emulate. */
        INTERNAL_ERROR(false),
        /** A device failed while handling a guest access. */
        DEVICE_ERROR(false),
        /** A vCPU or device thread made a system call its seccomp filter forbids. */
        SECCOMP_VIOLATION(false),
        /** An exit Panamax does not handle. */
        UNEXPECTED_EXIT(false);

        private final boolean clean;

        Reason(boolean clean) {
            this.clean = clean;
        }

        /** Whether this is an orderly end (exit status 0) rather than a failure. */
        public boolean clean() {
            return clean;
        }
    }

    @Override
    public String toString() {
        String who = vcpu >= 0 ? "vcpu " + vcpu + ": " : "";
        String regs = registers != null ? " [" + registers + "]" : "";
        return who + reason.name().toLowerCase().replace('_', ' ') + (detail.isEmpty() ? "" : ": " + detail) + regs;
    }
}
