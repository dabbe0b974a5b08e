package dev.panamax.control;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.boot.SyntheticKernels;
import dev.panamax.vmm.MachineConfig;
import dev.panamax.vmm.VmBuilder;
import dev.panamax.vmm.VmSnapshot;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** Stand-in kernels for tests on a host whose KVM only emulates (integer instructions only). */
public final class TestKernels {
    private TestKernels() {}

    /** A bzImage whose entry code spins for ever. */
    public static Path spinning(Path dir) throws IOException {
        return SyntheticKernels.write(dir, "spinning-bzImage", SyntheticKernels.bzImage());
    }

    /** A bzImage whose entry code resets the machine through the i8042 at once: mov al,0xfe; out 0x64,al; jmp $. */
    public static Path resetting(Path dir) throws IOException {
        byte[] image = SyntheticKernels.bzImage();
        byte[] reset = {(byte) 0xb0, (byte) 0xfe, (byte) 0xe6, 0x64, (byte) 0xeb, (byte) 0xfe};
        System.arraycopy(reset, 0, image, 1024 + 0x200, reset.length); // the 64-bit entry, 0x200 into the protected-mode kernel
        return SyntheticKernels.write(dir, "resetting-bzImage", image);
    }

    /**
     * Writes {@code vm.state} and {@code vm.mem} into {@code snapshot}: a 1-vCPU, 64 MiB VM of
     * {@code kernel}, snapshotted before its first instruction.
     */
    public static void snapshotBeforeFirstInstruction(Path kernel, Path snapshot) throws IOException {
        MachineConfig config = new MachineConfig(kernel, null, "", 1, 64, LinuxBoot.Protocol.AUTO, List.of(), List.of());
        VmBuilder.Machine machine = VmBuilder.build(config, null);
        try {
            machine.vm().startPaused();
            VmSnapshot.create(machine, new VmSnapshot.Create(snapshot.resolve("vm.state"), snapshot.resolve("vm.mem"), VmSnapshot.Kind.FULL));
        } finally {
            machine.vm().close();
        }
    }
}
