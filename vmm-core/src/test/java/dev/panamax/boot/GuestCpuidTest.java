package dev.panamax.boot;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.kvm.CpuidEntry;
import java.util.List;
import org.junit.jupiter.api.Test;

class GuestCpuidTest {
    private static final int TSC_DEADLINE = 1 << 24;
    private static final int HYPERVISOR = 1 << 31;
    // Leaf 1 as a host might report it: some feature bits, neither the hypervisor nor the TSC-deadline bit.
    private static final List<CpuidEntry> SUPPORTED = List.of(
            new CpuidEntry(0x1, 0, 0, 0x00a50f00, 0x00000800, 0x7ed8320b, 0x178bfbff),
            new CpuidEntry(0x40000001, 0, 0, 0x01007afb, 0, 0, 0));

    private static CpuidEntry leaf(List<CpuidEntry> entries, int function) {
        return entries.stream().filter(e -> e.function() == function).findFirst().orElseThrow();
    }

    @Test
    void leafOneCarriesTheApicIdTheCountAndTheHypervisorBit() {
        CpuidEntry one = leaf(GuestCpuid.forVcpu(SUPPORTED, 3, 4, false), 0x1);
        assertThat(one.ebx() >>> 24).as("initial APIC ID").isEqualTo(3);
        assertThat((one.ebx() >>> 16) & 0xff).as("logical processors").isEqualTo(4);
        assertThat(one.ecx() & HYPERVISOR).isNotZero();
        assertThat(one.ecx() & ~(HYPERVISOR | TSC_DEADLINE)).as("the other features as KVM supports them")
                .isEqualTo(SUPPORTED.getFirst().ecx());
        assertThat(leaf(GuestCpuid.forVcpu(SUPPORTED, 0, 1, false), 0x40000001)).isEqualTo(SUPPORTED.get(1));
    }

    @Test
    void theTscDeadlineTimerIsAdvertisedOnlyWhenKvmEmulatesIt() {
        assertThat(leaf(GuestCpuid.forVcpu(SUPPORTED, 0, 1, true), 0x1).ecx() & TSC_DEADLINE).isNotZero();
        assertThat(leaf(GuestCpuid.forVcpu(SUPPORTED, 0, 1, false), 0x1).ecx() & TSC_DEADLINE).isZero();
    }

    @Test
    void aGuestBuiltHereFitsThisHostWithItsOwnBitsAndTheOnesItsControlRegistersMirror() {
        List<CpuidEntry> guest = GuestCpuid.forVcpu(SUPPORTED, 0, 4, true).stream()
                .map(e -> e.function() == 0x1 ? e.withRegisters(e.eax(), e.ebx(), e.ecx() | 1 << 27, e.edx()) : e).toList(); // OSXSAVE
        assertThat(GuestCpuid.missingFeatures(guest, SUPPORTED)).isEmpty();
    }

    @Test
    void theFeaturesAHostLacksAreNamedByLeafRegisterAndBit() {
        List<CpuidEntry> guest = List.of(new CpuidEntry(0x1, 0, 0, 0, 0, SUPPORTED.getFirst().ecx() | 1 << 2, SUPPORTED.getFirst().edx()),
                new CpuidEntry(0x7, 0, 1, 0, 1 << 5 | 1 << 16, 0, 0));
        assertThat(GuestCpuid.missingFeatures(guest, SUPPORTED)).containsExactly("leaf 1 ECX bit 2", "leaf 7 EBX bit 5", "leaf 7 EBX bit 16");
    }
}
