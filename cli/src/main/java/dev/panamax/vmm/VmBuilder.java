package dev.panamax.vmm;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.Images;
import dev.panamax.sys.CpuSet;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.balloon.VirtioBalloon;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.fs.VirtioFs;
import dev.panamax.virtio.net.MacAddress;
import dev.panamax.virtio.net.NetBackend;
import dev.panamax.virtio.net.NetBackendException;
import dev.panamax.virtio.net.PasstBackend;
import dev.panamax.virtio.net.TapBackend;
import dev.panamax.virtio.net.VirtioNet;
import dev.panamax.virtio.ratelimit.RateLimiter;
import dev.panamax.virtio.rng.VirtioRng;
import dev.panamax.virtio.vsock.VirtioVsock;
import dev.panamax.vm.Vm;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.util.Comparator;
import java.util.List;
import java.util.function.Consumer;

/**
 * Builds a VM from its configuration, as Firecracker's {@code builder.rs} does: the KVM VM with its
 * memory, vCPUs and the loaded kernel, then every device through the {@link DeviceManager}. The
 * one place where drives and network interfaces become devices.
 */
public final class VmBuilder {
    private VmBuilder() {}

    /** What every guest's command line starts with: the console on COM1, reset through the i8042, no reboot loop after a panic. */
    public static final String BASE_COMMAND_LINE = "console=ttyS0 reboot=k panic=-1 tsc=reliable";

    /** A VM built and not yet started: KVM's side, the devices, and the configuration they were built from. */
    public record Machine(Vm vm, DeviceManager devices, MachineConfig config) {}

    /**
     * @param console where the guest's serial output goes; not closed by the VM
     * @throws dev.panamax.boot.BootException when the kernel, initrd or command line cannot be booted
     * @throws DeviceSetupException when a drive's image or a network interface's host end cannot be opened
     */
    public static Machine build(MachineConfig config, OutputStream console) {
        Vm vm = Vm.create();
        try {
            LinuxBoot.prepare(vm, new LinuxBoot.Spec(config.kernel(), config.initrd(), commandLine(config), config.cpus(),
                    config.memoryMib() << 20, config.protocol(), config.hugePages()));
            Machine machine = new Machine(vm, addDevices(vm, config, console, Backends.OPEN), config);
            pin(machine);
            confine(machine);
            return machine;
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    /**
     * The VM of {@code config} for a restore: the platform, the memory {@code addMemory} adds, the
     * vCPUs and every device, as {@link #build} makes them, but no kernel and no boot state: the
     * caller restores every state before it starts the VM.
     */
    static Machine buildForRestore(MachineConfig config, OutputStream console, Consumer<Vm> addMemory) {
        return buildForRestore(config, console, addMemory, Backends.OPEN);
    }

    /**
     * {@link #buildForRestore} for a migration's destination, while the source still holds the
     * drives' images and the network interfaces' host ends: each drive and network interface is
     * built without them ({@link VirtioBlk#unbound}, {@link VirtioNet#unbound}), until {@link
     * #openLateBackends}. The VM must not start before.
     *
     * @throws DeviceSetupException when a drive's image cannot be read (its format and size are taken now)
     */
    static Machine buildForMigration(MachineConfig config, OutputStream console, Consumer<Vm> addMemory) {
        return buildForRestore(config, console, addMemory, Backends.LATER);
    }

    /**
     * Opens what {@link #buildForMigration} left out: each drive's image, locked, and each network
     * interface's tap or passt, as {@link #build} opens them.
     *
     * @throws DeviceSetupException naming the drive or interface that could not be opened
     */
    static void openLateBackends(Machine machine) {
        for (DriveConfig drive : machine.config().drives()) {
            try {
                ((VirtioBlk) machine.devices().virtio("virtio-blk", drive.id())).bindDisk();
            } catch (IOException e) {
                throw new DeviceSetupException("drive " + drive.id() + ": " + e.getMessage(), e);
            }
        }
        for (NicConfig nic : machine.config().nics()) {
            ((VirtioNet) machine.devices().virtio("virtio-net", nic.id())).bindBackend(openNetBackend(nic));
        }
    }

    /** Whether drives and network interfaces get their host ends when they are built, or later ({@link #openLateBackends}). */
    private enum Backends { OPEN, LATER }

    private static Machine buildForRestore(MachineConfig config, OutputStream console, Consumer<Vm> addMemory, Backends backends) {
        Vm vm = Vm.create();
        try {
            LinuxBoot.preparePlatform(vm);
            addMemory.accept(vm);
            for (int i = 0; i < config.cpus(); i++) {
                vm.addVcpu();
            }
            Machine machine = new Machine(vm, addDevices(vm, config, console, backends), config);
            confine(machine);
            return machine;
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    /**
     * Pins the vCPUs and the device I/O threads as the configuration says; each thread pins itself
     * when it starts. Where vCPUs are pinned and the I/O threads are not given, the I/O threads get
     * the CPUs this thread (the builder) may use: they start on a vCPU's thread, when the guest's
     * driver activates a device, and would otherwise inherit that vCPU's CPUs.
     */
    private static void pin(Machine machine) {
        CpuPinning pinning = machine.config().pinning();
        if (pinning.isNone()) {
            return;
        }
        pinning.vcpus().forEach((index, cpus) -> machine.vm().vcpus().get(index).pinTo(cpus));
        CpuSet io = pinning.ioThreads() != null ? pinning.ioThreads() : CpuSet.ofCurrentThread();
        machine.devices().virtioDevices().forEach(device -> device.pinIoThreads(io));
    }

    /**
     * Turns the seccomp filters on, as the configuration says: each vCPU and each device I/O
     * thread confines itself as it starts, and a forbidden call ends the VM.
     */
    private static void confine(Machine machine) {
        if (machine.config().seccomp()) {
            machine.vm().enableSeccomp();
            machine.devices().virtioDevices().forEach(device -> device.confineIoThreads(machine.vm().sandbox()));
        }
    }

    /** Every device of {@code config}, in the device manager's order. */
    private static DeviceManager addDevices(Vm vm, MachineConfig config, OutputStream console, Backends backends) {
        DeviceManager devices = new DeviceManager(vm);
        devices.addLegacyDevices(console);
        devices.addPciBus();
        for (DriveConfig drive : inGuestOrder(config.drives())) {
            VirtioDevice blk = backends == Backends.OPEN ? openDrive(drive, config.cpus()) : unboundDrive(drive, config.cpus());
            if (drive.mmio()) {
                devices.addVirtioMmio("virtio-blk", drive.id(), blk);
            } else {
                devices.addVirtioPci("virtio-blk", drive.id(), blk);
            }
        }
        for (NicConfig nic : config.nics()) {
            devices.addVirtioPci("virtio-net", nic.id(), backends == Backends.OPEN ? openNic(nic) : unboundNic(nic));
        }
        if (config.vsock() != null) {
            devices.addVirtioPci("virtio-vsock", VSOCK_ID, openVsock(config.vsock()));
        }
        for (int i = 0; i < config.shares().size(); i++) {
            devices.addVirtioPci("virtio-fs", "fs" + i, openShare("fs" + i, config.shares().get(i)));
        }
        if (config.entropy() != null) {
            devices.addVirtioPci("virtio-rng", ENTROPY_ID,
                    new VirtioRng(ENTROPY_ID, VirtioRng.DEFAULT_QUEUE_SIZE, new RateLimiter(config.entropy().rateLimit())));
        }
        if (config.balloon() != null) {
            BalloonConfig b = config.balloon();
            devices.addVirtioPci("virtio-balloon", BALLOON_ID, new VirtioBalloon(BALLOON_ID, VirtioBalloon.pagesOfMib(b.amountMib()),
                    b.deflateOnOom(), b.statsIntervalSeconds()));
        }
        devices.addPvPanic(); // last: the other PCI devices keep the slots they had before it came
        return devices;
    }

    /**
     * The drives in the order the guest names them (vda, vdb, ...): Linux probes virtio-mmio
     * devices before PCI ones, and the root drive comes first within its transport.
     */
    static List<DriveConfig> inGuestOrder(List<DriveConfig> drives) {
        return drives.stream().sorted(Comparator.comparing((DriveConfig d) -> !d.mmio()).thenComparing(d -> !d.root())).toList();
    }

    /** The kernel's whole command line: the base, the virtio-mmio windows, a root= for a root drive, then the caller's part. */
    static String commandLine(MachineConfig config) {
        StringBuilder line = new StringBuilder(BASE_COMMAND_LINE);
        long mmio = config.drives().stream().filter(DriveConfig::mmio).count();
        for (int i = 0; i < mmio; i++) {
            line.append(' ').append(DeviceManager.mmioCommandLineOption(i));
        }
        config.drives().stream().filter(DriveConfig::root).findFirst()
                .ifPresent(root -> line.append(" root=/dev/vda ").append(root.readOnly() ? "ro" : "rw"));
        if (!config.commandLine().isBlank()) {
            line.append(' ').append(config.commandLine());
        }
        return line.toString();
    }

    /** The drive's image as a virtio-blk device with one request queue per vCPU. */
    private static VirtioDevice openDrive(DriveConfig drive, int queues) {
        try {
            return VirtioBlk.open(drive.id(), drive.image(), drive.format(), drive.readOnly(), queues, new RateLimiter(drive.rateLimit()));
        } catch (IOException e) {
            throw new DeviceSetupException("drive " + drive.id() + ": " + e.getMessage(), e);
        }
    }

    /**
     * The drive as a device whose image is opened later: the image's format and size read now,
     * read-only and unlocked (another process may be writing it).
     */
    private static VirtioDevice unboundDrive(DriveConfig drive, int queues) {
        ImageFormat format;
        long size;
        try (BlockBackend image = Images.open(drive.image(), Images.OpenOptions.readOnly().withFormat(drive.format()))) {
            format = image.format();
            size = image.size();
        } catch (IOException e) {
            throw new DeviceSetupException("drive " + drive.id() + ": " + e.getMessage(), e);
        }
        return VirtioBlk.unbound(drive.id(), drive.image(), format, drive.readOnly(), size, queues, new RateLimiter(drive.rateLimit()));
    }

    /** The entropy device's id among the VM's devices (a VM has at most one), Firecracker's resource name. */
    public static final String ENTROPY_ID = "entropy";
    /** The balloon's id among the VM's devices (a VM has at most one). */
    public static final String BALLOON_ID = "balloon";

    /** The vsock device's id among the VM's devices (a VM has at most one). */
    static final String VSOCK_ID = "vsock";

    /** The vsock device with its host side's socket made; refused when something is at its path. */
    private static VirtioDevice openVsock(VsockConfig vsock) {
        try {
            return new VirtioVsock(VSOCK_ID, vsock.guestCid(), vsock.udsPath(), VirtioVsock.DEFAULT_QUEUE_SIZE);
        } catch (UncheckedIOException e) {
            throw new DeviceSetupException("vsock: " + e.getMessage(), e);
        }
    }

    /** The shared folder's directory opened under a virtio-fs device; {@code id} is its device id ({@code fs0}, ...). */
    private static VirtioDevice openShare(String id, ShareConfig share) {
        try {
            return new VirtioFs(id, share.tag(), share.directory(), share.readOnly(), share.cache(), VirtioFs.DEFAULT_QUEUE_SIZE);
        } catch (UncheckedIOException | IllegalArgumentException e) {
            throw new DeviceSetupException("shared folder " + share.tag() + ": " + e.getMessage(), e);
        }
    }

    /** The interface's tap opened, or its passt started or reached, under a virtio-net device. */
    private static VirtioDevice openNic(NicConfig nic) {
        NetBackend backend = openNetBackend(nic);
        try {
            return new VirtioNet(nic.id(), mac(nic), backend, VirtioNet.DEFAULT_QUEUE_SIZE, new RateLimiter(nic.rxRateLimit()),
                    new RateLimiter(nic.txRateLimit()));
        } catch (RuntimeException e) {
            backend.close();
            throw e;
        }
    }

    /** The interface as a device whose tap or passt is opened later. */
    private static VirtioDevice unboundNic(NicConfig nic) {
        String kind = nic.tapName() != null || nic.tapFd() >= 0 ? "tap" : "passt";
        return VirtioNet.unbound(nic.id(), mac(nic), kind, VirtioNet.DEFAULT_QUEUE_SIZE, new RateLimiter(nic.rxRateLimit()),
                new RateLimiter(nic.txRateLimit()));
    }

    private static MacAddress mac(NicConfig nic) {
        return nic.guestMac() == null ? MacAddress.random() : MacAddress.parse(nic.guestMac());
    }

    /** The interface's tap opened, or its passt started or reached. */
    private static NetBackend openNetBackend(NicConfig nic) {
        try {
            if (nic.tapName() != null) {
                return TapBackend.open(nic.tapName());
            } else if (nic.tapFd() >= 0) {
                return TapBackend.adopt(nic.tapFd());
            } else {
                return nic.passtSocket() != null ? PasstBackend.connect(nic.passtSocket()) : PasstBackend.start();
            }
        } catch (NetBackendException e) {
            throw new DeviceSetupException("network interface " + nic.id() + ": " + e.getMessage(), e);
        }
    }
}
