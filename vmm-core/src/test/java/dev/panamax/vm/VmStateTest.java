package dev.panamax.vm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.kvm.LapicState;
import dev.panamax.kvm.Regs;
import dev.panamax.kvm.SpecialRegs;
import dev.panamax.kvm.VcpuFd;
import dev.panamax.kvm.VmFd;
import dev.panamax.rig.UsesKvm;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.x86.CpuMode;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * The VM's KVM state (vCPUs, irqchip, PIT, clock) saved from a paused VM and restored into a fresh
 * one, on this host's /dev/kvm, with tiny real-mode guests.
 */
@UsesKvm
class VmStateTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);
    private static final long MEMORY_SIZE = 0x10000;
    private static final long CODE = 0x1000;
    /** vCPU i keeps its counter at COUNTERS + 4 * i. */
    private static final long COUNTERS = 0x2000;
    /**
     * Real mode: xor ebx, ebx ; loop: inc ebx ; mov [si], ebx ; jmp loop. The counter lives in EBX,
     * so a restore that lost the registers starts it over (or does not run the program at all).
     */
    private static final byte[] COUNTER_LOOP = {0x66, 0x31, (byte) 0xdb, 0x66, 0x43, 0x66, (byte) 0x89, 0x1c, (byte) 0xeb, (byte) 0xf9};
    /** Real mode: loop: in eax, dx ; mov ebx, eax ; jmp loop. */
    private static final byte[] IN_LOOP = {0x66, (byte) 0xed, 0x66, (byte) 0x89, (byte) 0xc3, (byte) 0xeb, (byte) 0xf9};
    private static final int IN_PORT = 0x510;
    /** Far beyond what the guest counts before it is paused in a test that lost its registers. */
    private static final int COUNT_BEFORE_SAVE = 20_000;

    /** A VM with the in-kernel irqchip and PIT, 64 KiB of RAM, and {@code vcpus} vCPUs not set up. */
    private static Vm bareVm(int vcpus) {
        Vm vm = Vm.create();
        try {
            vm.fd().createIrqchip();
            vm.fd().createPit2();
            vm.addMemory(0, MEMORY_SIZE, false);
            for (int i = 0; i < vcpus; i++) {
                vm.addVcpu();
            }
            return vm;
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    /** {@link #bareVm} running {@link #COUNTER_LOOP} on every vCPU, each with its own counter. */
    private static Vm counterVm(int vcpus) {
        Vm vm = bareVm(vcpus);
        vm.memory().write(CODE, COUNTER_LOOP);
        for (Vcpu vcpu : vm.vcpus()) {
            CpuMode.enterRealMode(vcpu.fd(), (int) (CODE >> 4), 0);
            Regs regs = vcpu.fd().getRegs();
            regs.rsi = COUNTERS + 4L * vcpu.index();
            vcpu.fd().setRegs(regs);
            // With the in-kernel irqchip an application processor waits for INIT/SIPI; these run at once.
            vcpu.fd().setMpState(VcpuFd.MP_STATE_RUNNABLE);
        }
        return vm;
    }

    /**
     * Moves the LAPICs, PIC, IOAPIC and PIT away from their reset state (the guest never touches
     * them), so that a restore that skipped one of them reads back different.
     */
    private static void markInterruptControllers(Vm vm) {
        for (Vcpu vcpu : vm.vcpus()) {
            LapicState lapic = vcpu.fd().getLapic();
            // As firmware sets them up: LINT0 takes the PIC's interrupts, LINT1 NMIs. (Not the task
            // priority: KVM_SET_SREGS sets it too, through CR8.)
            lapic.setRegister(LapicState.LVT_LINT0, 0x700);
            lapic.setRegister(LapicState.LVT_LINT1, 0x400);
            vcpu.fd().setLapic(lapic);
        }
        byte[] pic = vm.fd().getIrqchip(VmFd.IRQCHIP_PIC_MASTER);
        pic[2] = (byte) 0xfb; // interrupt mask: all but the cascade
        vm.fd().setIrqchip(VmFd.IRQCHIP_PIC_MASTER, pic);
        byte[] slave = vm.fd().getIrqchip(VmFd.IRQCHIP_PIC_SLAVE);
        slave[5] = 0x70; // irq_base
        vm.fd().setIrqchip(VmFd.IRQCHIP_PIC_SLAVE, slave);
        byte[] ioapic = vm.fd().getIrqchip(VmFd.IRQCHIP_IOAPIC);
        ioapic[24 + 8] = 0x31; // redirection entry 1's vector
        vm.fd().setIrqchip(VmFd.IRQCHIP_IOAPIC, ioapic);
        byte[] pit = vm.fd().getPit2();
        int channel2 = 2 * 24; // the speaker channel: its gate is low, so it does not count
        pit[channel2] = 0x34;
        pit[channel2 + 1] = 0x12;
        pit[channel2 + 13] = 3; // rw_mode: low then high byte
        pit[channel2 + 14] = 3; // mode 3, square wave
        vm.fd().setPit2(pit);
    }

    private static int counter(Vm vm, int vcpu) {
        return vm.memory().readInt(COUNTERS + 4L * vcpu);
    }

    private static void awaitCounter(Vm vm, int vcpu, int atLeast) throws InterruptedException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (counter(vm, vcpu) < atLeast) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("vCPU " + vcpu + "'s counter stayed at " + counter(vm, vcpu) + ", below " + atLeast);
            }
            Thread.sleep(2);
        }
    }

    /** The first value a counter that was 0 takes, watched closely. */
    private static int firstNonZero(Vm vm, int vcpu) {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        int value;
        while ((value = counter(vm, vcpu)) == 0) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("vCPU " + vcpu + "'s counter never moved after the restore");
            }
            Thread.onSpinWait();
        }
        return value;
    }

    private static byte[] save(Vm vm) {
        StateWriter out = new StateWriter();
        vm.saveState(out);
        return out.toByteArray();
    }

    private static byte[] memoryOf(Vm vm) {
        byte[] ram = new byte[(int) MEMORY_SIZE];
        vm.memory().read(0, ram, 0, ram.length);
        return ram;
    }

    /** What a vCPU's registers and LAPIC read back as, to compare a restored vCPU with the saved one. */
    private record VcpuView(byte[] regs, byte[] sregs, byte[] lapic, int mpState) {
        static VcpuView of(Vcpu vcpu) {
            return new VcpuView(vcpu.fd().getRegs().toBytes(), vcpu.fd().getSpecialRegs().toBytes(),
                    vcpu.fd().getLapic().toBytes(), vcpu.fd().getMpState());
        }
    }

    /** The PIT state without each channel's count_load_time, which KVM_SET_PIT2 sets to the time of the call. */
    private static byte[] pitWithoutLoadTimes(VmFd fd) {
        byte[] pit = fd.getPit2();
        for (int channel = 0; channel < 3; channel++) {
            Arrays.fill(pit, channel * 24 + 16, channel * 24 + 24, (byte) 0);
        }
        return pit;
    }

    /** @param startedPausedFirst restore into a VM whose vCPU threads were started paused before, as a migration's destination does */
    private static void assertRestoredContinues(int vcpus, boolean startedPausedFirst) throws InterruptedException {
        byte[] state;
        byte[] ram;
        VcpuView[] before = new VcpuView[vcpus];
        int[] counted = new int[vcpus];
        byte[][] irqchips = new byte[3][];
        byte[] pit;
        long clockBeforePause;
        long pauseTook;
        try (Vm old = counterVm(vcpus)) {
            markInterruptControllers(old);
            old.start();
            for (int i = 0; i < vcpus; i++) {
                awaitCounter(old, i, COUNT_BEFORE_SAVE);
            }
            long pausing = System.nanoTime();
            clockBeforePause = old.fd().getClock();
            old.pause(); // takes the clock the snapshot holds
            pauseTook = System.nanoTime() - pausing;
            for (Vcpu vcpu : old.vcpus()) {
                before[vcpu.index()] = VcpuView.of(vcpu);
                counted[vcpu.index()] = (int) vcpu.fd().getRegs().rbx;
            }
            for (int chip = 0; chip < 3; chip++) {
                irqchips[chip] = old.fd().getIrqchip(chip);
            }
            pit = pitWithoutLoadTimes(old.fd());
            state = save(old);
            ram = memoryOf(old);
        }
        for (int i = 0; i < vcpus; i++) {
            assertThat(counted[i]).as("vCPU %d's EBX when saved", i).isGreaterThanOrEqualTo(COUNT_BEFORE_SAVE);
        }

        try (Vm restored = bareVm(vcpus)) {
            restored.memory().write(0, ram);
            for (int i = 0; i < vcpus; i++) {
                restored.memory().writeInt(COUNTERS + 4L * i, 0); // what the guest stores next comes from EBX
            }
            if (startedPausedFirst) {
                restored.startPaused();
            }
            restored.restoreState(new StateReader(state, "the test's state"));
            Thread.sleep(100); // time the guest's clock must not see: it was paused all along
            if (!startedPausedFirst) {
                restored.startPaused();
            }
            assertThat(restored.state()).isEqualTo(Vm.State.PAUSED);

            for (Vcpu vcpu : restored.vcpus()) {
                VcpuView after = VcpuView.of(vcpu);
                VcpuView saved = before[vcpu.index()];
                assertThat(after.regs()).as("vCPU %d's registers", vcpu.index()).isEqualTo(saved.regs());
                assertThat(after.sregs()).as("vCPU %d's special registers", vcpu.index()).isEqualTo(saved.sregs());
                assertThat(after.lapic()).as("vCPU %d's LAPIC", vcpu.index()).isEqualTo(saved.lapic());
                assertThat(after.mpState()).as("vCPU %d's MP state", vcpu.index()).isEqualTo(saved.mpState());
            }
            for (int chip = 0; chip < 3; chip++) {
                assertThat(restored.fd().getIrqchip(chip)).as("irqchip %d", chip).isEqualTo(irqchips[chip]);
            }
            assertThat(pitWithoutLoadTimes(restored.fd())).as("PIT").isEqualTo(pit);
            assertThat(counter(restored, 0)).as("nothing ran before resume").isZero();

            long resuming = System.nanoTime();
            restored.resume();
            long clockAfterResume = restored.fd().getClock();
            long resumeTook = System.nanoTime() - resuming;
            // A fresh VM's clock starts near 0, far below the old one's; and the guest's clock ran
            // only while pause() and resume() were under way, not through the restore and the sleep.
            assertThat(clockAfterResume - clockBeforePause).as("the guest clock goes on from the saved one")
                    .isNotNegative().isLessThanOrEqualTo(pauseTook + resumeTook);
            // Equal when the pause fell between "inc ebx" and its store: the first store is then the saved EBX.
            for (int i = 0; i < vcpus; i++) {
                assertThat(firstNonZero(restored, i)).as("vCPU %d's first count after the restore", i).isGreaterThanOrEqualTo(counted[i]);
            }
            restored.stop();
        }
    }

    @Test
    void aRestoredVmContinuesTheComputationWhereItStood() throws InterruptedException {
        assertRestoredContinues(1, false);
    }

    @Test
    void aRestoredTwoVcpuVmContinuesOnBothVcpus() throws InterruptedException {
        assertRestoredContinues(2, false);
    }

    @Test
    void aVmStartedPausedTakesTheStateBeforeItsGuestRunsAndContinuesFromIt() throws InterruptedException {
        assertRestoredContinues(2, true);
    }


    @Test
    void aVcpuPausedAfterAnInExitHasFinishedTheInstruction() throws InterruptedException {
        AtomicInteger served = new AtomicInteger();
        try (Vm vm = Vm.create()) {
            vm.addMemory(0, MEMORY_SIZE, false);
            vm.memory().write(CODE, IN_LOOP);
            vm.ports().register(IN_PORT, 4, new PortIoDevice() {
                @Override
                public int in(int offset, int size) {
                    return served.incrementAndGet();
                }

                @Override
                public void out(int offset, int size, int value) {}
            }, "counting IN port");
            Vcpu vcpu = vm.addVcpu();
            CpuMode.enterRealMode(vcpu.fd(), (int) (CODE >> 4), 0);
            Regs regs = vcpu.fd().getRegs();
            regs.rdx = IN_PORT;
            vcpu.fd().setRegs(regs);
            vm.start();
            // Many rounds: a pause requested just as the vCPU leaves its exit handler is the rare case.
            for (int round = 0; round < 200; round++) {
                int seen = served.get();
                long deadline = System.nanoTime() + TIMEOUT.toNanos();
                while (served.get() < seen + 5 && System.nanoTime() < deadline) {
                    Thread.onSpinWait();
                }
                vm.pause();
                // Unfinished, the last IN's value would still be in the kvm_run page, EAX one behind.
                assertThat((int) vcpu.fd().getRegs().rax).as("EAX after pause %d", round).isEqualTo(served.get());
                vm.resume();
            }
            vm.stop();
        }
    }

    // ---- hostile state ----

    /** A valid state of a paused one-vCPU counter VM. */
    private static byte[] validState() throws InterruptedException {
        try (Vm vm = counterVm(1)) {
            vm.start();
            awaitCounter(vm, 0, 1);
            vm.pause();
            return save(vm);
        }
    }

    /** The fields of one vCPU's section, each replaceable, so one at a time can be made wrong. */
    private static final class VcpuFields {
        int mpState = 0;
        int regsSize = Regs.SIZE;
        int xsaveSize;
        int msrIndex = 0x10; // IA32_TSC, which every KVM saves
        Consumer<StateWriter> cutAfterRegs = null;

        VcpuFields(Vm vm) {
            xsaveSize = vm.fd().xsaveSize();
        }

        void write(StateWriter w) {
            w.i32(0); // no CPUID entries
            w.i32(mpState);
            w.bytes(new byte[regsSize]);
            if (cutAfterRegs != null) {
                cutAfterRegs.accept(w);
                return;
            }
            w.bytes(new byte[SpecialRegs.SIZE]);
            w.bytes(new byte[xsaveSize]);
            w.bytes(new byte[VcpuFd.XCRS_SIZE]);
            w.bytes(new byte[VcpuFd.DEBUGREGS_SIZE]);
            w.bytes(new byte[LapicState.SIZE]);
            w.i32(1).i32(msrIndex).i64(0);
            w.bytes(new byte[VcpuFd.VCPU_EVENTS_SIZE]);
        }
    }

    /** A one-vCPU state built field by field, with {@code change} applied to the vCPU's fields. */
    private static StateReader builtState(Vm target, Consumer<VcpuFields> change) {
        VcpuFields fields = new VcpuFields(target);
        change.accept(fields);
        StateWriter w = new StateWriter();
        w.i32(1);
        w.section("vcpu/0", fields::write);
        w.section("irqchip", c -> {
            for (int chip = 0; chip < 3; chip++) {
                c.bytes(new byte[VmFd.IRQCHIP_STATE_SIZE]);
            }
        });
        w.section("pit", p -> p.bytes(new byte[VmFd.PIT_STATE_SIZE]));
        w.section("clock", c -> c.i64(0));
        w.section("tsc-khz", t -> t.i32(1_000_000));
        return new StateReader(w.toByteArray(), "the test's state");
    }

    private static void assertRefused(Consumer<VcpuFields> change, String... message) {
        try (Vm vm = bareVm(1)) {
            long ripBefore = vm.vcpus().getFirst().fd().getRegs().rip;
            assertThatThrownBy(() -> vm.restoreState(builtState(vm, change)))
                    .isInstanceOf(StateFormatException.class)
                    .hasMessageContainingAll(message);
            assertThat(vm.vcpus().getFirst().fd().getRegs().rip).as("nothing applied").isEqualTo(ripBefore);
            assertThat(vm.state()).isEqualTo(Vm.State.CREATED);
        }
    }

    @Test
    void aStateBuiltByTheseRulesIsAccepted() {
        // The hostile cases below each change one field of this state; unchanged, it must pass the checks.
        try (Vm vm = bareVm(1)) {
            StateReader state = builtState(vm, f -> {});
            try {
                vm.restoreState(state);
            } catch (StateFormatException e) {
                // All-zero registers are not a CPU state KVM takes; what matters is that every check passed.
                assertThat(e).hasMessageContaining("KVM refused");
            }
        }
    }

    @Test
    void aDifferentVcpuCountIsRefusedNamingBoth() throws InterruptedException {
        byte[] state = validState();
        try (Vm vm = bareVm(2)) {
            assertThatThrownBy(() -> vm.restoreState(new StateReader(state, "the test's state")))
                    .isInstanceOf(StateFormatException.class)
                    .hasMessageContaining("the snapshot has 1 vCPUs, and this VM has 2");
        }
    }

    @Test
    void aStructOfTheWrongSizeIsRefused() {
        assertRefused(f -> f.regsSize = Regs.SIZE + 8, "section vcpu/0", "general registers (struct kvm_regs) is 152 bytes, not 144");
    }

    @Test
    void anXsaveAreaOfAnotherSizeThanThisHostsIsRefused() {
        assertRefused(f -> f.xsaveSize += 64, "the XSAVE area is", "this host's KVM uses");
    }

    @Test
    void anMsrThisKvmDoesNotSaveIsRefused() {
        assertRefused(f -> f.msrIndex = 0xdeadbeef, "MSR 0xdeadbeef is not one this host's KVM saves");
    }

    @Test
    void anMpStateOutOfRangeIsRefused() {
        assertRefused(f -> f.mpState = 99, "MP state is 99, outside 0 to 10");
    }

    @Test
    void aSectionCutShortIsRefused() {
        assertRefused(f -> f.cutAfterRegs = w -> {}, "section vcpu/0", "special registers (struct kvm_sregs) length is cut off");
    }

    @Test
    void aTruncatedStateIsRefused() throws InterruptedException {
        byte[] state = validState();
        try (Vm vm = bareVm(1)) {
            StateReader cut = new StateReader(Arrays.copyOf(state, state.length - 2), "the test's state");
            assertThatThrownBy(() -> vm.restoreState(cut))
                    .isInstanceOf(StateFormatException.class)
                    .hasMessageContaining("section tsc-khz is cut off (4 bytes needed, 2 left)");
        }
    }

    @Test
    void aBadValueInTheLastSectionLeavesTheVcpusUntouched() throws InterruptedException {
        byte[] state = validState();
        Arrays.fill(state, state.length - 4, state.length, (byte) 0); // tsc-khz, the last field: 0 kHz
        try (Vm vm = bareVm(1)) {
            byte[] regsBefore = vm.vcpus().getFirst().fd().getRegs().toBytes();
            assertThatThrownBy(() -> vm.restoreState(new StateReader(state, "the test's state")))
                    .isInstanceOf(StateFormatException.class)
                    .hasMessageContaining("TSC frequency in kHz is 0");
            assertThat(vm.vcpus().getFirst().fd().getRegs().toBytes()).as("vCPU registers").isEqualTo(regsBefore);
        }
    }

    @Test
    void savingARunningVmAndRestoringIntoAStartedOneAreRefused() throws InterruptedException {
        try (Vm vm = counterVm(1)) {
            vm.start();
            assertThatThrownBy(() -> vm.saveState(new StateWriter()))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("running");
            vm.pause();
            byte[] state = save(vm);
            assertThatThrownBy(() -> vm.restoreState(new StateReader(state, "the test's state")))
                    .isInstanceOf(IllegalStateException.class).hasMessage("cannot restore a state into a VM whose guest has run");
        }
    }
}
