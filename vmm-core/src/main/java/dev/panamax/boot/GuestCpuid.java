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

    private static final int OSXSAVE_BIT = 1 << 27; // leaf 1 ECX: mirrors the guest's CR4.OSXSAVE
    private static final int OSPKE_BIT = 1 << 4; // leaf 7 ECX: mirrors the guest's CR4.PKE

    /** A CPUID register that lists features, and the bits in it that Panamax sets itself or the guest's control registers mirror. */
    private record FeatureRegister(int function, int index, int register, String name, int ownBits) {}

    private static final List<FeatureRegister> FEATURE_REGISTERS = List.of(
            new FeatureRegister(0x1, 0, 2, "leaf 1 ECX", HYPERVISOR_BIT | TSC_DEADLINE_BIT | OSXSAVE_BIT),
            new FeatureRegister(0x1, 0, 3, "leaf 1 EDX", HTT_BIT),
            new FeatureRegister(0x7, 0, 1, "leaf 7 EBX", 0),
            new FeatureRegister(0x7, 0, 2, "leaf 7 ECX", OSPKE_BIT),
            new FeatureRegister(0x7, 0, 3, "leaf 7 EDX", 0),
            new FeatureRegister(0xd, 1, 0, "leaf 0xd.1 EAX", 0),
            new FeatureRegister(0x80000001, 0, 2, "leaf 0x80000001 ECX", CMP_LEGACY_BIT),
            new FeatureRegister(0x80000001, 0, 3, "leaf 0x80000001 EDX", 0));

    /**
     * The CPU features a guest was given ({@code guest}, one vCPU's CPUID) that KVM cannot give it
     * here ({@code supported}, KVM_GET_SUPPORTED_CPUID), each as "leaf 7 EBX bit 5": a guest moved
     * to this host would lose them under its feet. Empty when the guest fits.
     */
    public static List<String> missingFeatures(List<CpuidEntry> guest, List<CpuidEntry> supported) {
        List<String> missing = new ArrayList<>();
        for (FeatureRegister f : FEATURE_REGISTERS) {
            int wanted = register(guest, f) & ~f.ownBits();
            int lacking = wanted & ~register(supported, f);
            for (int bit = 0; bit < 32; bit++) {
                if ((lacking & 1 << bit) != 0) {
                    missing.add(f.name() + " bit " + bit);
                }
            }
        }
        return missing;
    }

    private static int register(List<CpuidEntry> table, FeatureRegister f) {
        for (CpuidEntry e : table) {
            if (e.function() == f.function() && (e.index() == f.index() || f.function() == 0x1 || f.function() == 0x80000001)) {
                return switch (f.register()) {
                    case 0 -> e.eax();
                    case 1 -> e.ebx();
                    case 2 -> e.ecx();
                    default -> e.edx();
                };
            }
        }
        return 0;
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
