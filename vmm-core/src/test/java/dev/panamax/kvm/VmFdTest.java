package dev.panamax.kvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.demo.CountingPort;
import dev.panamax.demo.DemoGuest;
import dev.panamax.demo.DemoProgram;
import dev.panamax.rig.UsesKvm;
import dev.panamax.sys.EventFd;
import dev.panamax.sys.MappedMemory;
import dev.panamax.sys.NativeCallException;
import dev.panamax.vm.VmExit;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

/** The interrupt and event plumbing of a VM fd, on this host's /dev/kvm. */
@UsesKvm
class VmFdTest {

    @Test
    void ioeventfdTakesGuestPortWritesWithoutAnExitToTheVmm() {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.PORT_LOOP, 1, 25, null);
             EventFd event = EventFd.create(true)) {
            guest.vm().fd().registerIoEventFd(event, CountingPort.PORT, 1, true, OptionalLong.empty());

            assertThat(guest.run(Duration.ofSeconds(30))).get().extracting(VmExit::reason).isEqualTo(VmExit.Reason.HALTED);

            assertThat(guest.loopPort().writes()).as("writes that reached the Java device").isZero();
            assertThat(event.read()).as("writes the kernel signalled").isEqualTo(25);
            guest.vm().fd().unregisterIoEventFd(event, CountingPort.PORT, 1, true, OptionalLong.empty());
        }
    }

    @Test
    void irqfdAndGsiRoutingAreAcceptedAndDuplicatesRefused() {
        try (Kvm kvm = Kvm.open(); VmFd vm = kvm.createVm(); EventFd event = EventFd.create(true)) {
            vm.createIrqchip();
            vm.setGsiRouting(List.of(new GsiRoute.Irqchip(4, 2, 4), new GsiRoute.Msi(24, 0xfee00000L, 0x30)));
            vm.registerIrqFd(event, 24);
            event.signal();
            assertThatThrownBy(() -> vm.registerIrqFd(event, 24))
                    .isInstanceOf(NativeCallException.class)
                    .satisfies(e -> assertThat(((NativeCallException) e).errnoName()).isEqualTo("EBUSY"));
            vm.unregisterIrqFd(event, 24);
            vm.registerIrqFd(event, 24); // free again after the deassign
        }
    }

    @Test
    void kvmclockTakesTheValueItIsSetTo() {
        try (Kvm kvm = Kvm.open(); VmFd vm = kvm.createVm()) {
            long anHour = Duration.ofHours(1).toNanos();
            long later = vm.getClock() + anHour;
            vm.setClock(later);
            assertThat(vm.getClock()).isGreaterThanOrEqualTo(later).isLessThan(later + anHour);
        }
    }

    @Test
    void dirtyLogShowsThePagesTheGuestWrote() {
        // real mode at 0x1000: mov byte [0x2000], 1 ; hlt
        byte[] code = {(byte) 0xc6, 0x06, 0x00, 0x20, 0x01, (byte) 0xf4};
        try (Kvm kvm = Kvm.open(); VmFd vm = kvm.createVm(); MappedMemory ram = MappedMemory.anonymous(0x10000)) {
            vm.setUserMemoryRegion(0, true, 0, ram.size(), ram.address());
            MemorySegment.copy(code, 0, ram.segment(), ValueLayout.JAVA_BYTE, 0x1000, code.length);
            try (VcpuFd vcpu = vm.createVcpu(0)) {
                SpecialRegs sregs = vcpu.getSpecialRegs();
                sregs.cs.selector = 0;
                sregs.cs.base = 0;
                vcpu.setSpecialRegs(sregs);
                Regs regs = new Regs();
                regs.rip = 0x1000;
                regs.rflags = 2;
                vcpu.setRegs(regs);
                vm.dirtyLog(0, ram.size()); // clear what setting up wrote

                assertThat(vcpu.run()).isEqualTo(VcpuFd.EXIT_HLT);

                long pages = vm.dirtyLog(0, ram.size())[0];
                assertThat(pages & (1L << 2)).as("page 2 (0x2000) was written").isNotZero();
                assertThat(pages & (1L << 5)).as("page 5 was not").isZero();
                assertThat(vm.dirtyLog(0, ram.size())[0] & (1L << 2)).as("reading the log clears it").isZero();
            }
        }
    }

}
