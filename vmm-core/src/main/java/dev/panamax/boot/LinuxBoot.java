package dev.panamax.boot;

import dev.panamax.kvm.CpuidEntry;
import dev.panamax.kvm.Fpu;
import dev.panamax.kvm.Kvm;
import dev.panamax.kvm.LapicState;
import dev.panamax.kvm.MsrEntry;
import dev.panamax.kvm.Regs;
import dev.panamax.kvm.VcpuFd;
import dev.panamax.sys.HugePageSize;
import dev.panamax.sys.MappedMemory;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.Vcpu;
import dev.panamax.vm.Vm;
import dev.panamax.x86.CpuMode;
import dev.panamax.x86.E820Entry;
import dev.panamax.x86.PhysicalLayout;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Prepares a VM to boot Linux directly (no firmware): in-kernel irqchip and PIT, RAM around the
 * MMIO hole, the kernel, initrd and command line in memory, the MP table, the zero page or PVH
 * start info, and every vCPU's CPUID, MSRs, FPU, local APIC and (for the boot vCPU) entry state.
 * The caller adds devices, then starts the VM.
 */
public final class LinuxBoot {
    private LinuxBoot() {}

    /** How to enter the kernel. AUTO: PVH when a vmlinux has the note, else the 64-bit boot protocol. */
    public enum Protocol { AUTO, PVH, LINUX64 }

    /**
     * What to boot.
     *
     * @param initrd the initial ramdisk, or null
     * @param commandLine the complete kernel command line
     * @param hugePages the hugetlb page size guest RAM is mapped from, or null for ordinary pages (transparent huge pages where the host gives them)
     */
    public record Spec(Path kernel, Path initrd, String commandLine, int cpus, long memoryBytes, Protocol protocol,
            HugePageSize hugePages) {
        /** Guest RAM on ordinary pages. */
        public Spec(Path kernel, Path initrd, String commandLine, int cpus, long memoryBytes, Protocol protocol) {
            this(kernel, initrd, commandLine, cpus, memoryBytes, protocol, null);
        }
    }

    private static final long RESET_VECTOR_PAGE_SIZE = 0x1000;
    private static final long TSS_ADDRESS = 0xfffb_d000L;
    private static final int LVT_DELIVERY_MODE = 0x700;
    private static final int DELIVERY_EXTINT = 0x700;
    private static final int DELIVERY_NMI = 0x400;
    /** MSRs given defined values at reset, as real firmware would leave them. */
    private static final List<MsrEntry> BOOT_MSRS = List.of(
            new MsrEntry(0x174, 0), // IA32_SYSENTER_CS
            new MsrEntry(0x175, 0), // IA32_SYSENTER_ESP
            new MsrEntry(0x176, 0), // IA32_SYSENTER_EIP
            new MsrEntry(0xc0000081, 0), // STAR
            new MsrEntry(0xc0000082, 0), // LSTAR
            new MsrEntry(0xc0000083, 0), // CSTAR
            new MsrEntry(0xc0000084, 0), // SYSCALL_MASK
            new MsrEntry(0xc0000102, 0), // KERNEL_GS_BASE
            new MsrEntry(0x10, 0), // IA32_TSC
            new MsrEntry(0x1a0, 1), // IA32_MISC_ENABLE: fast strings
            new MsrEntry(0x2ff, (1 << 11) | 6)); // MTRRdefType: MTRRs on, write-back by default

    /** At the reset vector, in real mode: mov al, 0xfe; out 0x64, al (pulse the reset line); cli; hlt; jmp back to hlt. */
    private static final byte[] RESET_VECTOR_CODE = {(byte) 0xb0, (byte) 0xfe, (byte) 0xe6, 0x64, (byte) 0xfa, (byte) 0xf4, (byte) 0xeb, (byte) 0xfd};

    /** The result: which protocol was used and where things went, for logs and tests. */
    public record Layout(KernelImage.Format format, Protocol protocol, long entry, long initrdAddress, long initrdSize) {}

    /** Validates {@code spec} and sets {@code vm} up to boot it; {@code vm} must be new. */
    public static Layout prepare(Vm vm, Spec spec) {
        if (spec.cpus() < 1 || spec.cpus() > MpTable.MAX_CPUS) {
            throw new BootException("a guest has 1 to " + MpTable.MAX_CPUS + " vCPUs, not " + spec.cpus());
        }
        if (spec.memoryBytes() < PhysicalLayout.MINIMUM_MEMORY) {
            throw new BootException(String.format("%d MiB of guest memory is too little; Linux needs at least %d MiB",
                    spec.memoryBytes() >> 20, PhysicalLayout.MINIMUM_MEMORY >> 20));
        }
        if (spec.memoryBytes() % (1 << 20) != 0) {
            throw new BootException("guest memory must be a whole number of MiB, not " + spec.memoryBytes() + " bytes");
        }
        if (spec.hugePages() != null && spec.memoryBytes() % spec.hugePages().bytes() != 0) {
            throw new BootException(String.format("guest memory on %s huge pages must be a multiple of %d MiB, not %d MiB",
                    spec.hugePages().label(), spec.hugePages().bytes() >> 20, spec.memoryBytes() >> 20));
        }
        KernelImage kernel = KernelImage.open(spec.kernel());
        Protocol protocol = chooseProtocol(kernel, spec.protocol());
        byte[] commandLine = spec.commandLine().getBytes(StandardCharsets.UTF_8);
        if (commandLine.length > kernel.commandLineLimit()) {
            throw new BootException("the kernel command line is " + commandLine.length + " bytes; this kernel accepts at most "
                    + kernel.commandLineLimit());
        }
        long initrdSize = spec.initrd() == null ? 0 : initrdSize(spec.initrd());
        long lowEnd = PhysicalLayout.lowMemoryEnd(spec.memoryBytes());

        preparePlatform(vm);
        for (PhysicalLayout.RamRegion r : PhysicalLayout.ramRegions(spec.memoryBytes())) {
            // Both RAM regions are multiples of the page size when the memory is: the MMIO hole starts at 3 GiB.
            vm.addMemory(r.address(), spec.hugePages() == null ? MappedMemory.anonymous(r.size()) : MappedMemory.hugePages(r.size(), spec.hugePages()));
        }
        // The reset vector's page is 4 KiB alone below 4 GiB: ordinary memory, whatever backs RAM.
        vm.addMemory(PhysicalLayout.RESET_VECTOR_PAGE, RESET_VECTOR_PAGE_SIZE, false);
        GuestMemory memory = vm.memory();
        memory.write(PhysicalLayout.RESET_VECTOR_PAGE + 0xff0, RESET_VECTOR_CODE);
        kernel.load(memory, lowEnd);
        memory.write(PhysicalLayout.COMMAND_LINE, commandLine);
        memory.writeByte(PhysicalLayout.COMMAND_LINE + commandLine.length, (byte) 0);
        long initrdAddress = 0;
        if (initrdSize > 0) {
            initrdAddress = placeInitrd(kernel, initrdSize, lowEnd);
            loadInitrd(spec.initrd(), memory, initrdAddress, initrdSize);
        }
        MpTable.write(memory, spec.cpus());
        List<E820Entry> map = PhysicalLayout.e820(spec.memoryBytes());
        long entry;
        if (protocol == Protocol.PVH) {
            entry = kernel.pvhEntry().orElseThrow();
            memory.write(PhysicalLayout.PVH_START_INFO,
                    PvhStartInfo.build(PhysicalLayout.PVH_START_INFO, PhysicalLayout.COMMAND_LINE, initrdAddress, initrdSize, map));
        } else {
            entry = kernel.entry64();
            BootParams params = kernel.newBootParams();
            params.setCommandLine(PhysicalLayout.COMMAND_LINE);
            params.setInitrd(initrdAddress, initrdSize);
            params.setMemoryMap(map);
            memory.write(PhysicalLayout.ZERO_PAGE, params.bytes());
        }

        List<CpuidEntry> supported = vm.kvm().supportedCpuid();
        boolean tscDeadline = vm.kvm().checkExtension(Kvm.Capability.TSC_DEADLINE_TIMER) > 0;
        for (int i = 0; i < spec.cpus(); i++) {
            Vcpu vcpu = vm.addVcpu();
            configureVcpu(vcpu.fd(), GuestCpuid.forVcpu(supported, i, spec.cpus(), tscDeadline));
        }
        // Application processors wait in the in-kernel LAPIC for the INIT/SIPI the kernel sends them.
        VcpuFd boot = vm.vcpus().getFirst().fd();
        if (protocol == Protocol.PVH) {
            CpuMode.enterProtectedMode(memory, boot, PhysicalLayout.GDT, entry);
            Regs regs = boot.getRegs();
            regs.rbx = PhysicalLayout.PVH_START_INFO;
            boot.setRegs(regs);
        } else {
            CpuMode.enterLongMode(memory, boot, PhysicalLayout.PAGE_TABLES, PhysicalLayout.GDT, entry, PhysicalLayout.BOOT_STACK);
            Regs regs = boot.getRegs();
            regs.rsi = PhysicalLayout.ZERO_PAGE;
            boot.setRegs(regs);
        }
        return new Layout(kernel.format(), protocol, entry, initrdAddress, initrdSize);
    }

    /**
     * What every VM of this platform has in KVM before memory and vCPUs: the TSS pages Intel VMX
     * needs, the in-kernel PIC and IOAPIC, and the PIT. A restored VM gets the same, then its state.
     */
    public static void preparePlatform(Vm vm) {
        vm.fd().setTssAddress(TSS_ADDRESS);
        vm.fd().createIrqchip();
        vm.fd().createPit2();
    }

    /**
     * The guest-physical memory of a guest with {@code memoryBytes} of RAM: the RAM around the MMIO
     * hole, then the page at the reset vector. A snapshot's memory map must be exactly this.
     */
    public static List<PhysicalLayout.RamRegion> memoryRegions(long memoryBytes) {
        List<PhysicalLayout.RamRegion> regions = new ArrayList<>(PhysicalLayout.ramRegions(memoryBytes));
        regions.add(new PhysicalLayout.RamRegion(PhysicalLayout.RESET_VECTOR_PAGE, RESET_VECTOR_PAGE_SIZE));
        return List.copyOf(regions);
    }

    private static Protocol chooseProtocol(KernelImage kernel, Protocol wanted) {
        boolean pvh = kernel.pvhEntry().isPresent();
        return switch (wanted) {
            case AUTO -> pvh ? Protocol.PVH : Protocol.LINUX64;
            case PVH -> {
                if (!pvh) {
                    throw new BootException(kernel.path() + " has no PVH entry note (build it with CONFIG_PVH, and boot the vmlinux, not a bzImage)");
                }
                yield Protocol.PVH;
            }
            case LINUX64 -> Protocol.LINUX64;
        };
    }

    private static void configureVcpu(VcpuFd vcpu, List<CpuidEntry> cpuid) {
        vcpu.setCpuid(cpuid);
        vcpu.setMsrs(BOOT_MSRS);
        Fpu fpu = new Fpu();
        fpu.fcw = 0x37f; // x87 default: all exceptions masked, extended precision
        fpu.mxcsr = 0x1f80; // SSE default: all exceptions masked
        vcpu.setFpu(fpu);
        LapicState lapic = vcpu.getLapic();
        lapic.setRegister(LapicState.LVT_LINT0, (lapic.register(LapicState.LVT_LINT0) & ~LVT_DELIVERY_MODE) | DELIVERY_EXTINT);
        lapic.setRegister(LapicState.LVT_LINT1, (lapic.register(LapicState.LVT_LINT1) & ~LVT_DELIVERY_MODE) | DELIVERY_NMI);
        vcpu.setLapic(lapic);
    }

    private static long initrdSize(Path initrd) {
        try {
            if (Files.isDirectory(initrd)) {
                throw new BootException("initrd " + initrd + " is a directory");
            }
            return Files.size(initrd);
        } catch (NoSuchFileException e) {
            throw new BootException("initrd " + initrd + " does not exist");
        } catch (IOException e) {
            throw new BootException("cannot read initrd " + initrd + ": " + e.getMessage(), e);
        }
    }

    /** As high as the kernel allows and RAM reaches, page-aligned, and above the kernel. */
    private static long placeInitrd(KernelImage kernel, long size, long lowEnd) {
        long top = Math.min(lowEnd, kernel.initrdAddressMax() + 1);
        long address = (top - size) & ~0xfffL;
        if (size >= top || address < kernel.loadEnd()) {
            throw new BootException(String.format("the initrd (%d MiB) does not fit between the kernel (ending at %d MiB) and %d MiB: give the guest more memory",
                    (size + (1 << 20) - 1) >> 20, kernel.loadEnd() >> 20, top >> 20));
        }
        return address;
    }

    private static void loadInitrd(Path initrd, GuestMemory memory, long address, long size) {
        try (FileChannel file = FileChannel.open(initrd, StandardOpenOption.READ)) {
            KernelImage.copy(file, 0, size, memory, address);
        } catch (IOException e) {
            throw new BootException("cannot read initrd " + initrd + ": " + e.getMessage(), e);
        }
    }
}
