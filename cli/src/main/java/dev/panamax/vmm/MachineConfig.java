package dev.panamax.vmm;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.sys.HugePageSize;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * What a VM is built from, its values checked by {@link VmRules}.
 *
 * @param kernel a vmlinux or bzImage
 * @param initrd the initial ramdisk, or null
 * @param commandLine what the caller adds to {@link VmBuilder#BASE_COMMAND_LINE}
 * @param cpus vCPUs
 * @param memoryMib guest RAM
 * @param protocol how the kernel is entered
 * @param drives the drives, in the order they were given
 * @param nics the network interfaces, in the order they were given
 * @param vsock the vsock device, or null for none
 * @param shares the shared folders (virtio-fs devices), in the order they were given
 * @param pinning the host CPUs of the vCPU and device I/O threads
 * @param hugePages the hugetlb page size guest RAM is mapped from, or null for ordinary pages
 * @param entropy the entropy device, or null for none
 * @param balloon the memory balloon, or null for none
 * @param seccomp whether the vCPU and device I/O threads confine themselves with seccomp filters
 */
public record MachineConfig(Path kernel, Path initrd, String commandLine, int cpus, long memoryMib, LinuxBoot.Protocol protocol,
        List<DriveConfig> drives, List<NicConfig> nics, VsockConfig vsock, List<ShareConfig> shares, CpuPinning pinning,
        HugePageSize hugePages, EntropyConfig entropy, BalloonConfig balloon, boolean seccomp) {
    public MachineConfig {
        Objects.requireNonNull(kernel, "kernel");
        Objects.requireNonNull(commandLine, "commandLine");
        Objects.requireNonNull(protocol, "protocol");
        drives = List.copyOf(drives);
        nics = List.copyOf(nics);
        shares = List.copyOf(shares);
        Objects.requireNonNull(pinning, "pinning");
    }

    /** A machine with seccomp filters on. */
    public MachineConfig(Path kernel, Path initrd, String commandLine, int cpus, long memoryMib, LinuxBoot.Protocol protocol,
            List<DriveConfig> drives, List<NicConfig> nics, VsockConfig vsock, List<ShareConfig> shares, CpuPinning pinning,
            HugePageSize hugePages, EntropyConfig entropy, BalloonConfig balloon) {
        this(kernel, initrd, commandLine, cpus, memoryMib, protocol, drives, nics, vsock, shares, pinning, hugePages, entropy, balloon, true);
    }

    /** This machine with seccomp filters on or off. */
    public MachineConfig withSeccomp(boolean on) {
        return new MachineConfig(kernel, initrd, commandLine, cpus, memoryMib, protocol, drives, nics, vsock, shares, pinning, hugePages,
                entropy, balloon, on);
    }

    /** A machine without an entropy device or a balloon. */
    public MachineConfig(Path kernel, Path initrd, String commandLine, int cpus, long memoryMib, LinuxBoot.Protocol protocol,
            List<DriveConfig> drives, List<NicConfig> nics, VsockConfig vsock, List<ShareConfig> shares, CpuPinning pinning,
            HugePageSize hugePages) {
        this(kernel, initrd, commandLine, cpus, memoryMib, protocol, drives, nics, vsock, shares, pinning, hugePages, null, null);
    }

    /** A machine on ordinary pages with no thread pinned. */
    public MachineConfig(Path kernel, Path initrd, String commandLine, int cpus, long memoryMib, LinuxBoot.Protocol protocol,
            List<DriveConfig> drives, List<NicConfig> nics, VsockConfig vsock, List<ShareConfig> shares) {
        this(kernel, initrd, commandLine, cpus, memoryMib, protocol, drives, nics, vsock, shares, CpuPinning.NONE, null);
    }

    /** A machine without shared folders. */
    public MachineConfig(Path kernel, Path initrd, String commandLine, int cpus, long memoryMib, LinuxBoot.Protocol protocol,
            List<DriveConfig> drives, List<NicConfig> nics, VsockConfig vsock) {
        this(kernel, initrd, commandLine, cpus, memoryMib, protocol, drives, nics, vsock, List.of());
    }

    /** A machine without a vsock device or shared folders. */
    public MachineConfig(Path kernel, Path initrd, String commandLine, int cpus, long memoryMib, LinuxBoot.Protocol protocol,
            List<DriveConfig> drives, List<NicConfig> nics) {
        this(kernel, initrd, commandLine, cpus, memoryMib, protocol, drives, nics, null);
    }
}
