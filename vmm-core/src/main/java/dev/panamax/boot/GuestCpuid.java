package dev.panamax.boot;

import dev.panamax.kvm.CpuidEntry;
import java.util.ArrayList;
import java.util.List;

/**
 * The CPUID a vCPU reports: what KVM supports here, with each vCPU's APIC ID and the topology
 * (one package, one thread per core, {@code count} cores) written into the leaves that carry them.
 * The hypervisor leaves (0x40000000 and up, which advertise kvmclock) pass through unchanged.
 * KVM_GET_SUPPORTED_CPUID leaves out the TSC-deadline timer, which the in-kernel LAPIC emulates
 * when {@code KVM_CAP_TSC_DEADLINE_TIMER} says so: with it the guest arms its timer with one MSR
 * write instead of the LAPIC's memory-mapped registers, which KVM must decode and emulate.
 */
public final class GuestCpuid {
    private GuestCpuid() {}

    private static final int HYPERVISOR_BIT = 1 << 31; // leaf 1 ECX
    private static final int TSC_DEADLINE_BIT = 1 << 24; // leaf 1 ECX
    private static final int HTT_BIT = 1 << 28; // leaf 1 EDX: more than one logical processor
    private static final int CMP_LEGACY_BIT = 1 << 1; // leaf 0x80000001 ECX (AMD)

    public static List<CpuidEntry> forVcpu(List<CpuidEntry> supported, int apicId, int count, boolean tscDeadline) {
        int coreBits = 32 - Integer.numberOfLeadingZeros(Math.max(count - 1, 0));
        List<CpuidEntry> entries = new ArrayList<>(supported.size());
        for (CpuidEntry e : supported) {
            entries.add(switch (e.function()) {
                case 0x1 -> e.withRegisters(e.eax(),
                        (e.ebx() & 0x0000ffff) | (count << 16) | (apicId << 24),
                        e.ecx() | HYPERVISOR_BIT | (tscDeadline ? TSC_DEADLINE_BIT : 0),
                        count > 1 ? e.edx() | HTT_BIT : e.edx() & ~HTT_BIT);
                case 0x4 -> e.withRegisters((e.eax() & 0x03ffffff) | ((count - 1) << 26), e.ebx(), e.ecx(), e.edx());
                case 0xb, 0x1f -> topologyLeaf(e, apicId, count, coreBits);
                case 0x80000001 -> e.withRegisters(e.eax(), e.ebx(),
                        count > 1 ? e.ecx() | CMP_LEGACY_BIT : e.ecx() & ~CMP_LEGACY_BIT, e.edx());
                case 0x80000008 -> e.withRegisters(e.eax(), e.ebx(), (e.ecx() & ~0xff) | (count - 1), e.edx());
                default -> e;
            });
        }
        return entries;
    }

    /** Extended topology: subleaf 0 is the thread level (1 per core), 1 the core level, the rest invalid. */
    private static CpuidEntry topologyLeaf(CpuidEntry e, int apicId, int count, int coreBits) {
        return switch (e.index()) {
            case 0 -> e.withRegisters(0, 1, (1 << 8), apicId);
            case 1 -> e.withRegisters(coreBits, count, (2 << 8) | 1, apicId);
            default -> e.withRegisters(0, 0, e.index(), apicId);
        };
    }
}
