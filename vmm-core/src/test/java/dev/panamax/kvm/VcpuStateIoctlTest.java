package dev.panamax.kvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.rig.UsesKvm;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The vCPU state ioctls a snapshot uses, on this host's /dev/kvm: what is set reads back. */
@UsesKvm
class VcpuStateIoctlTest {
    private static final int IA32_TSC = 0x10;
    private static final int IA32_APIC_BASE = 0x1b;
    private static final int NO_SUCH_MSR = 0xdeadbeef;

    @Test
    void getMsrsStopsAtAnUnreadableMsrAndReadableMsrsDropsIt() {
        try (Kvm kvm = Kvm.open(); VmFd vm = kvm.createVm(); VcpuFd vcpu = vm.createVcpu(0)) {
            assertThat(kvm.msrIndexList()).contains(IA32_TSC);

            List<MsrEntry> read = vcpu.getMsrs(new int[] {IA32_TSC, NO_SUCH_MSR, IA32_APIC_BASE});
            assertThat(read).extracting(MsrEntry::index).containsExactly(IA32_TSC);

            assertThat(vcpu.readableMsrs(new int[] {NO_SUCH_MSR, IA32_TSC, NO_SUCH_MSR + 1, IA32_APIC_BASE, NO_SUCH_MSR + 2}))
                    .containsExactly(IA32_TSC, IA32_APIC_BASE);
        }
    }

    @Test
    void debugRegistersMpStateXcrsXsaveAndEventsReadBackAsSet() {
        try (Kvm kvm = Kvm.open(); VmFd vm = kvm.createVm()) {
            vm.createIrqchip();
            try (VcpuFd vcpu = vm.createVcpu(0)) {
                byte[] debug = vcpu.getDebugRegs();
                ByteBuffer.wrap(debug).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 0x1234_5678L); // db[0]
                vcpu.setDebugRegs(debug);
                assertThat(ByteBuffer.wrap(vcpu.getDebugRegs()).order(ByteOrder.LITTLE_ENDIAN).getLong(0)).isEqualTo(0x1234_5678L);

                vcpu.setMpState(3); // KVM_MP_STATE_HALTED
                assertThat(vcpu.getMpState()).isEqualTo(3);

                byte[] xsave = vcpu.getXsave(vm.xsaveSize());
                assertThat(xsave).hasSize(vm.xsaveSize());
                vcpu.setXsave(xsave);
                assertThat(vcpu.getXsave(vm.xsaveSize())).isEqualTo(xsave);

                byte[] xcrs = vcpu.getXcrs();
                assertThat(VcpuFd.xcrCount(xcrs)).isBetween(0, VcpuFd.MAX_XCRS);
                vcpu.setXcrs(xcrs);
                assertThat(vcpu.getXcrs()).isEqualTo(xcrs);

                byte[] events = vcpu.getVcpuEvents();
                vcpu.setVcpuEvents(events);
                assertThat(vcpu.getVcpuEvents()).isEqualTo(events);

                assertThat(vcpu.getTscKhz()).isPositive();
                assertThat(vcpu.getFpu().fcw).as("x87 control word after reset").isEqualTo(0x37f);
            }
        }
    }

    @Test
    void structsOfTheWrongSizeAreRefusedBeforeTheIoctl() {
        try (Kvm kvm = Kvm.open(); VmFd vm = kvm.createVm(); VcpuFd vcpu = vm.createVcpu(0)) {
            assertThatThrownBy(() -> vcpu.setVcpuEvents(new byte[VcpuFd.VCPU_EVENTS_SIZE - 1]))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("kvm_vcpu_events is 64 bytes, not 63");
            assertThatThrownBy(() -> vm.setPit2(new byte[3])).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> Regs.fromBytes(new byte[Regs.SIZE + 1])).isInstanceOf(IllegalArgumentException.class);
        }
    }
}
