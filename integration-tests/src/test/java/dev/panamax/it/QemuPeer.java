package dev.panamax.it;

import dev.panamax.rig.RealKvm;
import java.nio.file.Path;
import java.util.List;

/**
 * QEMU as the peer VMM that Panamax is compared with: the command that boots a kernel with KVM on
 * {@code -M microvm} (no PCI, minimal firmware), console on stdout, exiting when the guest resets.
 * microvm has no i8042 of its own, and without one a guest's {@code reboot=k} ends in the BIOS
 * reboot path and hangs, so one is added: the reset then ends QEMU through {@code -no-reboot}.
 * {@code rtc=on}: without the CMOS RTC the guest's rtc_cmos probe spins on absent ports, which
 * cost 5-6 s of boot as L2 in the rig (0.8 s to /init with it).
 */
final class QemuPeer {
    private QemuPeer() {}

    /** The argv; run it where {@link RealKvm} is. {@code kernel} may be a bzImage or a PVH vmlinux. */
    static List<String> bootCommand(Path kernel, Path initramfs, String commandLine, int memoryMib) {
        return List.of("qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-M", "microvm,rtc=on", "-device", "i8042",
                "-m", String.valueOf(memoryMib), "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
                "-kernel", kernel.toString(), "-initrd", initramfs.toString(), "-append", commandLine);
    }
}
