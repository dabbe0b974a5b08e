package dev.panamax.demo;

import dev.panamax.kvm.Kvm;
import dev.panamax.kvm.Regs;
import dev.panamax.vm.Vcpu;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import dev.panamax.x86.CpuMode;
import java.io.OutputStream;
import java.time.Duration;
import java.util.Optional;

/**
 * A VM set up to run one {@link DemoProgram}: 512 KiB of RAM, the program at {@link #LOAD_ADDRESS},
 * the debug console, the scratch register and the counting port. Each vCPU starts with its index
 * in RDI and {@code argument} in RCX.
 */
public final class DemoGuest implements AutoCloseable {
    public static final long MEMORY_SIZE = 512 * 1024;
    public static final long LOAD_ADDRESS = 0x10000;
    /** Where {@link DemoProgram#COUNTER} keeps its counter. */
    public static final long COUNTER_ADDRESS = LOAD_ADDRESS + 0x100;
    private static final long GDT = 0x500;
    private static final long PAGE_TABLES = 0x1000;
    private static final long STACK_TOP = 0xF000;
    private static final int MAX_VCPUS = 8;

    private final Vm vm;
    private final DebugConsole console;
    private final ScratchRegister scratch = new ScratchRegister();
    private final CountingPort loopPort = new CountingPort();

    private DemoGuest(Vm vm, DemoProgram program, int vcpus, long argument, OutputStream echo) {
        this.vm = vm;
        this.console = new DebugConsole(echo);
        vm.addMemory(0, MEMORY_SIZE, false);
        vm.memory().write(LOAD_ADDRESS, program.code());
        vm.ports().register(DebugConsole.PORT, 1, console, "debug console");
        vm.ports().register(CountingPort.PORT, 1, loopPort, "counting port");
        vm.mmio().register(ScratchRegister.ADDRESS, ScratchRegister.SIZE, scratch, "scratch register");
        for (int i = 0; i < vcpus; i++) {
            Vcpu vcpu = vm.addVcpu();
            if (program.longMode()) {
                CpuMode.enterLongMode(vm.memory(), vcpu.fd(), PAGE_TABLES, GDT, LOAD_ADDRESS, STACK_TOP - i * 0x1000L);
            } else {
                CpuMode.enterRealMode(vcpu.fd(), (int) (LOAD_ADDRESS >> 4), 0);
            }
            Regs regs = vcpu.fd().getRegs();
            regs.rdi = i;
            regs.rcx = argument;
            vcpu.fd().setRegs(regs);
        }
    }

    /**
     * A new VM loaded with {@code program}.
     *
     * @param kvm the /dev/kvm fd to use, or null to open one for this VM
     * @param echo where to copy the debug console's output as it arrives, or null
     */
    public static DemoGuest create(Kvm kvm, DemoProgram program, int vcpus, long argument, OutputStream echo) {
        if (vcpus < 1 || vcpus > MAX_VCPUS) {
            throw new IllegalArgumentException("a demo guest has 1 to " + MAX_VCPUS + " vCPUs, not " + vcpus);
        }
        Vm vm = kvm == null ? Vm.create() : Vm.create(kvm);
        try {
            return new DemoGuest(vm, program, vcpus, argument, echo);
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    public Vm vm() {
        return vm;
    }

    public DebugConsole console() {
        return console;
    }

    public ScratchRegister scratch() {
        return scratch;
    }

    public CountingPort loopPort() {
        return loopPort;
    }

    /** The value of {@link DemoProgram#COUNTER}'s counter. */
    public int counter() {
        return vm.memory().readInt(COUNTER_ADDRESS);
    }

    /** Starts the VM and waits up to {@code timeout} for it to exit; stops it if it has not. */
    public Optional<VmExit> run(Duration timeout) {
        vm.start();
        Optional<VmExit> exit = vm.awaitExit(timeout);
        if (exit.isEmpty()) {
            vm.stop();
        }
        return exit;
    }

    @Override
    public void close() {
        vm.close();
    }
}
