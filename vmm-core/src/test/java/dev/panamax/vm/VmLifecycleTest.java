package dev.panamax.vm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.demo.DemoGuest;
import dev.panamax.demo.DemoProgram;
import dev.panamax.rig.UsesKvm;
import dev.panamax.x86.CpuMode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

@UsesKvm
class VmLifecycleTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);

    /** Waits (bounded) until the guest's counter moves past {@code above}; returns it. */
    private static int awaitCounterAbove(DemoGuest guest, int above) throws InterruptedException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (System.nanoTime() < deadline) {
            int value = guest.counter();
            if (value > above) {
                return value;
            }
            Thread.sleep(5);
        }
        throw new AssertionError("the guest counter did not advance past " + above);
    }

    @Test
    void pauseResumeAndStopPullAVcpuOutOfATightLoop() throws InterruptedException {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.COUNTER, 1, 0, null)) {
            Vm vm = guest.vm();
            vm.start();
            awaitCounterAbove(guest, 0);

            vm.pause(); // returns only once the vCPU thread is parked outside KVM_RUN
            assertThat(vm.state()).isEqualTo(Vm.State.PAUSED);
            int whilePaused = guest.counter();
            long clockWhilePaused = vm.fd().getClock();
            long exitsWhilePaused = vm.vcpuExits();
            Thread.sleep(200);
            assertThat(guest.counter()).as("the counter stands still while paused").isEqualTo(whilePaused);
            assertThat(exitsWhilePaused).as("the pause itself pulled the vCPU out of KVM_RUN").isPositive();
            assertThat(vm.vcpuExits()).isEqualTo(exitsWhilePaused);

            long beforeResume = System.nanoTime();
            vm.resume();
            long clockAfterResume = vm.fd().getClock();
            long resumedFor = System.nanoTime() - beforeResume;
            // Had the clock run on through the pause, it would be ahead by the 200 ms slept as well.
            assertThat(clockAfterResume - clockWhilePaused).as("the guest's clock stood still while paused")
                    .isLessThan(resumedFor + Duration.ofMillis(100).toNanos());
            assertThat(vm.state()).isEqualTo(Vm.State.RUNNING);
            awaitCounterAbove(guest, whilePaused);

            vm.stop();
            assertThat(vm.state()).isEqualTo(Vm.State.EXITED);
            assertThat(vm.exit()).get().extracting(VmExit::reason).isEqualTo(VmExit.Reason.STOPPED);
            int afterStop = guest.counter();
            Thread.sleep(100);
            assertThat(guest.counter()).isEqualTo(afterStop);
        }
    }

    @Test
    void stopWhilePausedEndsTheVm() throws InterruptedException {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.COUNTER, 2, 0, null)) {
            guest.vm().start();
            awaitCounterAbove(guest, 0);
            guest.vm().pause();
            guest.vm().stop();
            assertThat(guest.vm().awaitExit(TIMEOUT)).get().extracting(VmExit::reason).isEqualTo(VmExit.Reason.STOPPED);
        }
    }

    @Test
    void tripleFaultIsReportedWithRegisters() {
        // ud2 in long mode with an empty IDT: #UD cannot be delivered, #DF neither: a triple fault.
        try (Vm vm = Vm.create()) {
            vm.addMemory(0, 0x80000, false);
            vm.memory().write(0x10000, new byte[] {0x0f, 0x0b});
            Vcpu vcpu = vm.addVcpu();
            CpuMode.enterLongMode(vm.memory(), vcpu.fd(), 0x1000, 0x500, 0x10000, 0x8000);
            vm.start();

            VmExit exit = vm.awaitExit(TIMEOUT).orElseThrow();

            assertThat(exit.reason()).isEqualTo(VmExit.Reason.TRIPLE_FAULT);
            assertThat(exit.reason().clean()).isFalse();
            assertThat(exit.vcpu()).isZero();
            assertThat(exit.registers()).isNotNull();
            assertThat(exit.toString()).contains("triple fault", "rip=");
            assertThat(vm.vcpuExits(Vcpu.ExitKind.SHUTDOWN)).isEqualTo(1);
            assertThat(vm.vcpuExits(Vcpu.ExitKind.FAILURE)).isZero();
        }
    }

    @Test
    void unclaimedAccessesReadAllOnesAndWritesAreDropped() {
        // in al, 0x80 ; mov bl, al ; mov al, [0xE000] (segment 0xF000 -> 0xFE000, outside RAM) ; hlt
        byte[] code = {(byte) 0xe4, (byte) 0x80, (byte) 0x88, (byte) 0xc3, 0x68, 0x00, (byte) 0xf0, 0x1f,
            (byte) 0xa0, 0x00, (byte) 0xe0, (byte) 0xf4};
        try (Vm vm = Vm.create()) {
            vm.addMemory(0, 0x80000, false);
            vm.memory().write(0x10000, code);
            Vcpu vcpu = vm.addVcpu();
            CpuMode.enterRealMode(vcpu.fd(), 0x1000, 0);
            vm.start();

            VmExit exit = vm.awaitExit(TIMEOUT).orElseThrow();

            assertThat(exit.reason()).isEqualTo(VmExit.Reason.HALTED);
            assertThat(exit.registers().rbx & 0xff).isEqualTo(0xff);
            assertThat(exit.registers().rax & 0xff).isEqualTo(0xff);
            assertThat(Stream.of(Vcpu.ExitKind.values()).map(vm::vcpuExits).toList())
                    .as("exits by kind: the IN, the MMIO read, the HLT").containsExactly(1L, 0L, 1L, 0L, 1L, 0L, 0L);
        }
    }

    @Test
    void aStoppedVcpuIsDescribedWithWhereItStoodAndWhetherItWasHalted() throws InterruptedException {
        // in al, 0x80 ; cli ; hlt: with the in-kernel irqchip KVM keeps a HLT to itself, so the guest hangs, halted
        byte[] code = {(byte) 0xe4, (byte) 0x80, (byte) 0xfa, (byte) 0xf4};
        try (Vm vm = Vm.create()) {
            vm.fd().createIrqchip();
            vm.addMemory(0, 0x80000, false);
            vm.memory().write(0x10000, code);
            Vcpu vcpu = vm.addVcpu();
            CpuMode.enterRealMode(vcpu.fd(), 0x1000, 0);
            assertThat(vcpu.describe()).isEqualTo("vcpu 0: 0 exits (io in 0, io out 0, mmio read 0, mmio write 0, hlt 0, shutdown 0,"
                    + " failure 0), never started");
            vm.start();
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (vcpu.exits(Vcpu.ExitKind.IO_IN) == 0 && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertThat(vm.awaitExit(Duration.ofMillis(200))).as("a guest halted with interrupts off does not end").isEmpty();

            vm.stop();

            assertThat(vcpu.describe()).startsWith("vcpu 0: ").contains("(io in 1, io out 0, mmio read 0, mmio write 0, hlt 0,")
                    .endsWith(", stopped at rip=0000000000000004 rflags=00000002 (interrupts off), KVM state halted");
        }
    }

    @Test
    void lifecycleMisuseIsRefused() {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.HELLO_REAL_MODE, 1, 0, null)) {
            Vm vm = guest.vm();
            assertThatThrownBy(vm::resume).isInstanceOf(IllegalStateException.class).hasMessageContaining("created");
            vm.start();
            assertThatThrownBy(vm::start).isInstanceOf(IllegalStateException.class);
            assertThatThrownBy(vm::addVcpu).isInstanceOf(IllegalStateException.class);
            vm.awaitExit(TIMEOUT);
        }
    }

    @Test
    void closingTwoHundredVmsLeaksNoFdsOrMappings() throws IOException {
        runAndClose(); // warm up: class loading, JIT and the JVM's own fds
        long fdsBefore = openFds();
        long mappingsBefore = mappings();
        for (int i = 0; i < 200; i++) {
            runAndClose();
        }
        // Not equal: the JVM closes fds of its own now and then (one fewer was seen in CI); a leak adds.
        assertThat(openFds()).isLessThanOrEqualTo(fdsBefore);
        // The JVM maps and unmaps on its own (GC, JIT); a leak of even one mapping per VM would add 200.
        assertThat(mappings()).isLessThan(mappingsBefore + 50);
    }

    private static void runAndClose() {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.HELLO_REAL_MODE, 1, 0, null)) {
            assertThat(guest.run(TIMEOUT)).get().extracting(VmExit::reason).isEqualTo(VmExit.Reason.HALTED);
        }
    }

    private static long openFds() throws IOException {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.count();
        }
    }

    private static long mappings() throws IOException {
        return Files.readAllLines(Path.of("/proc/self/maps")).size();
    }
}
