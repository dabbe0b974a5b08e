package dev.panamax.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.demo.DebugConsole;
import dev.panamax.rig.UsesKvm;
import dev.panamax.sys.CpuSet;
import dev.panamax.sys.HostThreads;
import dev.panamax.sys.HugePagePool;
import dev.panamax.sys.HugePageSize;
import dev.panamax.sys.ProcSelf;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The boot path on this host's /dev/kvm with stand-in kernels whose entry code reports what it was
 * handed: proves the entry mode, registers, zero page / start info and memory map, without Linux.
 */
@UsesKvm
class LinuxBootTest {
    @TempDir Path dir;

    private String bootAndRead(Path kernel, Path initrd, LinuxBoot.Protocol protocol, int expectedChars) throws InterruptedException {
        try (Vm vm = Vm.create()) {
            LinuxBoot.prepare(vm, new LinuxBoot.Spec(kernel, initrd, "panamax test", 2, 64L << 20, protocol));
            DebugConsole console = new DebugConsole(null);
            vm.ports().register(DebugConsole.PORT, 1, console, "debug console");
            vm.start();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (console.text().length() < expectedChars && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            vm.stop();
            return console.text();
        }
    }

    @Test
    void bzImageIsEnteredInLongModeWithTheZeroPage() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        // 'p' from the command line, 4 e820 entries for 64 MiB: low RAM, the reserved BIOS area,
        // RAM from 1 MiB, the reserved reset-vector page
        assertThat(bootAndRead(kernel, null, LinuxBoot.Protocol.AUTO, 2)).isEqualTo("p4");
    }

    @Test
    void vmlinuxIsEnteredThroughPvhWithTheInitrdAsModule() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "vmlinux", SyntheticKernels.vmlinux(true));
        Path initrd = Files.write(dir.resolve("initrd"), new byte[12345]);
        assertThat(bootAndRead(kernel, initrd, LinuxBoot.Protocol.AUTO, 2)).isEqualTo("p1");
    }

    @Test
    void aCpuResetToTheResetVectorPulsesTheI8042ResetLine() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        try (Vm vm = Vm.create()) {
            LinuxBoot.prepare(vm, new LinuxBoot.Spec(kernel, null, "", 1, 64L << 20, LinuxBoot.Protocol.AUTO));
            java.util.concurrent.CompletableFuture<Integer> command = new java.util.concurrent.CompletableFuture<>();
            vm.ports().register(0x64, 1, new dev.panamax.vm.PortIoDevice() {
                @Override
                public int in(int offset, int size) {
                    return 0;
                }

                @Override
                public void out(int offset, int size, int value) {
                    command.complete(value);
                }
            }, "i8042 command port");
            // The state INIT leaves the boot CPU in: real mode, CS base 0xffff0000, IP 0xfff0.
            dev.panamax.kvm.VcpuFd cpu = vm.vcpus().getFirst().fd();
            dev.panamax.kvm.SpecialRegs sregs = cpu.getSpecialRegs();
            sregs.cr0 = 0x60000010L;
            sregs.efer = 0;
            sregs.cs.selector = 0xf000;
            sregs.cs.base = 0xffff0000L;
            sregs.cs.limit = 0xffff;
            sregs.cs.type = 0xb;
            sregs.cs.l = false;
            sregs.cs.db = false;
            sregs.cs.g = false;
            cpu.setSpecialRegs(sregs);
            dev.panamax.kvm.Regs regs = new dev.panamax.kvm.Regs();
            regs.rip = 0xfff0;
            regs.rflags = 2;
            cpu.setRegs(regs);
            vm.start();
            assertThat(command.get(30, java.util.concurrent.TimeUnit.SECONDS)).isEqualTo(0xfe);
            vm.stop();
        }
    }

    @Test
    void badInputIsRefusedWithOneSentence() throws Exception {
        Path bz = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        Path noPvh = SyntheticKernels.write(dir, "vmlinux", SyntheticKernels.vmlinux(false));
        Path text = Files.writeString(dir.resolve("notes.txt"), "hello");
        assertRefused(new LinuxBoot.Spec(dir.resolve("missing"), null, "", 1, 64L << 20, LinuxBoot.Protocol.AUTO), "does not exist");
        assertRefused(new LinuxBoot.Spec(text, null, "", 1, 64L << 20, LinuxBoot.Protocol.AUTO), "not a Linux kernel");
        assertRefused(new LinuxBoot.Spec(dir, null, "", 1, 64L << 20, LinuxBoot.Protocol.AUTO), "directory");
        assertRefused(new LinuxBoot.Spec(bz, null, "", 0, 64L << 20, LinuxBoot.Protocol.AUTO), "not 0");
        assertRefused(new LinuxBoot.Spec(bz, null, "", 1, 8L << 20, LinuxBoot.Protocol.AUTO), "too little");
        assertRefused(new LinuxBoot.Spec(bz, null, "x".repeat(2048), 1, 64L << 20, LinuxBoot.Protocol.AUTO), "at most 2047");
        assertRefused(new LinuxBoot.Spec(noPvh, null, "", 1, 64L << 20, LinuxBoot.Protocol.PVH), "no PVH entry note");
        assertRefused(new LinuxBoot.Spec(bz, dir.resolve("nope"), "", 1, 64L << 20, LinuxBoot.Protocol.AUTO), "initrd");
        Path bigInitrd = dir.resolve("big");
        try (var f = java.nio.channels.FileChannel.open(bigInitrd, java.nio.file.StandardOpenOption.CREATE_NEW,
                java.nio.file.StandardOpenOption.WRITE)) {
            f.write(java.nio.ByteBuffer.wrap(new byte[1]), 100L << 20); // sparse 100 MiB
        }
        assertRefused(new LinuxBoot.Spec(bz, bigInitrd, "", 1, 64L << 20, LinuxBoot.Protocol.AUTO), "does not fit");
    }

    private static void assertRefused(LinuxBoot.Spec spec, String reason) {
        try (Vm vm = Vm.create()) {
            assertThatThrownBy(() -> LinuxBoot.prepare(vm, spec)).isInstanceOf(BootException.class).hasMessageContaining(reason);
        }
    }

    @Test
    void guestRamOnHugePagesIsMappedFromThemAndTheGuestRunsOnIt() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        try (HugePagePool _ = HugePagePool.reserve(HugePageSize.SIZE_2M, 32); Vm vm = Vm.create()) {
            LinuxBoot.prepare(vm, new LinuxBoot.Spec(kernel, null, "panamax test", 1, 64L << 20, LinuxBoot.Protocol.AUTO,
                    HugePageSize.SIZE_2M));
            GuestMemory.Region ram = vm.memory().regions().getFirst();
            assertThat(ram.guestAddress()).isZero();
            assertThat(ProcSelf.kernelPageSize(ram.backing().address())).isEqualTo("2048 kB");
            DebugConsole console = new DebugConsole(null);
            vm.ports().register(DebugConsole.PORT, 1, console, "debug console");
            vm.start();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (console.text().length() < 2 && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            vm.stop();
            assertThat(console.text()).as("the stand-in kernel's report, read from the zero page in huge-page RAM").isEqualTo("p4");
        }
    }

    @Test
    void guestRamOnHugePagesMustBeAWholeNumberOfThem() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        try (Vm vm = Vm.create()) {
            assertThatThrownBy(() -> LinuxBoot.prepare(vm, new LinuxBoot.Spec(kernel, null, "", 1, 65L << 20, LinuxBoot.Protocol.AUTO,
                    HugePageSize.SIZE_2M))).isInstanceOf(BootException.class)
                    .hasMessage("guest memory on 2M huge pages must be a multiple of 2 MiB, not 65 MiB");
        }
    }

    @Test
    void eachVcpuThreadIsPinnedToItsCpusBeforeTheVmStartReturns() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        CpuSet online = CpuSet.online();
        int first = online.stream().min().orElseThrow();
        int last = online.stream().max().orElseThrow();
        try (Vm vm = Vm.create()) {
            LinuxBoot.prepare(vm, new LinuxBoot.Spec(kernel, null, "", 2, 64L << 20, LinuxBoot.Protocol.AUTO));
            vm.vcpus().get(0).pinTo(CpuSet.of(last));
            vm.vcpus().get(1).pinTo(CpuSet.of(first));
            vm.start();

            assertThat(ProcSelf.cpusAllowedList(vm.vcpus().get(0).hostThreadId())).isEqualTo(String.valueOf(last));
            assertThat(ProcSelf.cpusAllowedList(vm.vcpus().get(1).hostThreadId())).isEqualTo(String.valueOf(first));
            vm.stop();
        }
    }

    @Test
    void aVcpuThatCannotBePinnedEndsTheVmSayingWhy() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        try (Vm vm = Vm.create()) {
            LinuxBoot.prepare(vm, new LinuxBoot.Spec(kernel, null, "", 1, 64L << 20, LinuxBoot.Protocol.AUTO));
            vm.vcpus().getFirst().pinTo(CpuSet.of(CpuSet.MAX_CPUS - 1)); // no host has it: the kernel refuses
            vm.start();

            assertThat(vm.awaitExit(Duration.ofSeconds(30))).hasValueSatisfying(exit -> {
                assertThat(exit.reason()).isEqualTo(VmExit.Reason.INTERNAL_ERROR);
                assertThat(exit.toString()).contains("vCPU 0 could not be pinned to host CPUs 8191");
            });
        }
    }
}
