package dev.panamax.kvm;

/**
 * One CPUID leaf as KVM reports and takes it ({@code struct kvm_cpuid_entry2}).
 *
 * @param function the leaf (EAX input)
 * @param index the subleaf (ECX input), meaningful when {@code flags} says so
 * @param flags {@code KVM_CPUID_FLAG_*}
 */
public record CpuidEntry(int function, int index, int flags, int eax, int ebx, int ecx, int edx) {
    public CpuidEntry withRegisters(int eax, int ebx, int ecx, int edx) {
        return new CpuidEntry(function, index, flags, eax, ebx, ecx, edx);
    }
}
