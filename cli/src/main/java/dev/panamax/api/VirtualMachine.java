package dev.panamax.api;

import dev.panamax.boot.BootException;
import dev.panamax.boot.LinuxBoot;
import dev.panamax.devices.LegacyPlatform;
import dev.panamax.devices.pci.PciBus;
import dev.panamax.kvm.KvmUnavailableException;
import dev.panamax.sys.NativeCallException;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.mmio.VirtioMmioDevice;
import dev.panamax.virtio.net.MacAddress;
import dev.panamax.virtio.net.NetBackend;
import dev.panamax.virtio.net.NetBackendException;
import dev.panamax.virtio.net.PasstBackend;
import dev.panamax.virtio.net.TapBackend;
import dev.panamax.virtio.net.VirtioNet;
import dev.panamax.virtio.pci.VirtioPciDevice;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import dev.panamax.vmm.DriveConfig;
import dev.panamax.vmm.NicConfig;
import dev.panamax.vmm.VmRules;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * A Linux virtual machine: built from a kernel, an optional initrd, a command line, vCPUs, memory,
 * drives and network interfaces, with its serial console (COM1) going to an output stream and to
 * line listeners. Thread-safe: any thread may call any method; {@link #close()} releases the VM's
 * threads, file descriptors and memory.
 *
 * <pre>{@code
 * try (VirtualMachine vm = VirtualMachine.builder()
 *         .kernel(Path.of("vmlinux")).initrd(Path.of("initramfs.cpio.gz"))
 *         .commandLine("panamax.run=\"uname -a\"").cpus(2).memoryMib(256)
 *         .console(System.out).build()) {
 *     vm.start();
 *     VirtualMachine.Exit exit = vm.awaitExit(Duration.ofSeconds(30)).orElseThrow();
 * }
 * }</pre>
 */
public final class VirtualMachine implements AutoCloseable {
    /** What every guest's command line starts with: the console on COM1, reset through the i8042, no reboot loop after a panic. */
    public static final String BASE_COMMAND_LINE = "console=ttyS0 reboot=k panic=-1 tsc=reliable";
    public static final int DEFAULT_CPUS = 1;
    public static final long DEFAULT_MEMORY_MIB = 256;
    private static final String PANIC_MARKER = "Kernel panic - not syncing";

    /** Where a VM is in its life. */
    public enum State { CREATED, RUNNING, PAUSED, EXITED, CLOSED }

    /** How the kernel is entered. */
    public enum BootProtocol {
        /** PVH for a vmlinux with the PVH note, else the 64-bit boot protocol. */
        AUTO,
        /** The PVH entry of a vmlinux (built with CONFIG_PVH). */
        PVH,
        /** The 64-bit entry of the Linux boot protocol (a bzImage, or a vmlinux). */
        LINUX64
    }

    /** Why a VM ended. */
    public enum ExitReason {
        /** Every vCPU executed HLT with no interrupt controller to wake it (bare programs only). */
        HALTED,
        /** The guest powered off. */
        POWER_OFF,
        /** The guest rebooted (Panamax ends the VM rather than rebooting it): Linux's reboot, or its answer to {@link #shutdown()}. */
        RESET,
        /** {@link #kill()} or {@link #close()} ended it. */
        STOPPED,
        /** The vCPU met a triple fault. */
        TRIPLE_FAULT,
        /** The kernel panicked. */
        GUEST_CRASH,
        /** KVM could not enter the guest. */
        FAIL_ENTRY,
        /** KVM failed, for example on an instruction it could not emulate. */
        INTERNAL_ERROR,
        /** A device failed while handling the guest. */
        DEVICE_ERROR,
        /** KVM exited for a reason Panamax does not handle. */
        UNEXPECTED_EXIT;

        /** Whether this is an orderly end rather than a failure. */
        public boolean clean() {
            return VmExit.Reason.valueOf(name()).clean(); // the reasons mirror the VMM's own, one for one
        }
    }

    /**
     * How a VM ended.
     *
     * @param reason the kind of end
     * @param description a sentence with the specifics (the vCPU, KVM's exit data, the panic message, registers)
     */
    public record Exit(ExitReason reason, String description) {
        public Exit {
            Objects.requireNonNull(reason, "reason");
            Objects.requireNonNull(description, "description");
        }

        public boolean clean() {
            return reason.clean();
        }

        @Override
        public String toString() {
            return description;
        }
    }

    private final Vm vm;
    private final LegacyPlatform platform;
    private final AtomicLong consoleBytes = new AtomicLong();
    private final Object lifecycle = new Object(); // orders start, pause and resume against each other
    private volatile String panic;

    private VirtualMachine(Builder b) {
        Vm created = Vm.create();
        try {
            LinuxBoot.prepare(created, new LinuxBoot.Spec(b.kernel, b.initrd, b.fullCommandLine(), b.cpus, b.memoryMib << 20,
                    LinuxBoot.Protocol.valueOf(b.protocol.name())));
            platform = LegacyPlatform.install(created, new FilterOutputStream(b.console) {
                @Override
                public void write(int oneByte) throws IOException {
                    out.write(oneByte);
                    consoleBytes.incrementAndGet();
                }

                @Override
                public void write(byte[] bytes, int offset, int length) throws IOException {
                    out.write(bytes, offset, length); // the UART writes whole buffers: no byte-at-a-time copying
                    consoleBytes.addAndGet(length);
                }
            });
            platform.com1().addLineListener(line -> {
                if (panic == null && line.contains(PANIC_MARKER)) {
                    panic = line.strip();
                }
            });
            PciBus pci = PciBus.install(created);
            attachDrives(created, pci, b.drivesInGuestOrder(), b.cpus);
            attachNetworkInterfaces(created, pci, b.networkInterfaces);
        } catch (RuntimeException e) {
            created.close();
            throw e;
        }
        this.vm = created;
    }

    // ---- The one place where drives and network interfaces become devices ----

    /**
     * Opens each drive's image as a virtio-blk device with one request queue per vCPU, on its
     * transport; the virtio-mmio ones take the windows {@link Builder#fullCommandLine()} announced, in order.
     */
    private static void attachDrives(Vm vm, PciBus pci, List<Drive> drives, int queues) {
        int mmioDevices = 0;
        for (Drive drive : drives) {
            VirtioBlk blk;
            try {
                blk = VirtioBlk.open(drive.id(), drive.path(), drive.readOnly(), queues);
            } catch (IOException e) {
                throw new VirtualMachineException("drive " + drive.id() + ": " + e.getMessage(), e);
            }
            if (drive.transport() == Transport.PCI) {
                attachPci(vm, pci, blk);
            } else {
                int window = mmioDevices++;
                attach(blk, () -> VirtioMmioDevice.attach(vm, blk, window));
            }
        }
    }

    /** Opens each interface's tap, or starts its passt, and puts a virtio-net device on it on PCI. */
    private static void attachNetworkInterfaces(Vm vm, PciBus pci, List<NetworkInterface> interfaces) {
        for (NetworkInterface nic : interfaces) {
            NetBackend backend;
            try {
                if (nic.hostDevice() != null) {
                    backend = TapBackend.open(nic.hostDevice());
                } else if (nic.tapDescriptor() >= 0) {
                    backend = TapBackend.adopt(nic.tapDescriptor());
                } else {
                    backend = nic.passtSocket() != null ? PasstBackend.connect(nic.passtSocket()) : PasstBackend.start();
                }
            } catch (NetBackendException e) {
                throw new VirtualMachineException("network interface " + nic.id() + ": " + e.getMessage(), e);
            }
            VirtioNet net;
            try {
                MacAddress mac = nic.guestMac() == null ? MacAddress.random() : MacAddress.parse(nic.guestMac());
                net = new VirtioNet(nic.id(), mac, backend, VirtioNet.DEFAULT_QUEUE_SIZE);
            } catch (RuntimeException e) {
                backend.close();
                throw e;
            }
            attachPci(vm, pci, net);
        }
    }

    private static void attachPci(Vm vm, PciBus pci, VirtioDevice device) {
        attach(device, () -> VirtioPciDevice.attach(vm, pci, device));
    }

    /** Runs {@code attachment}, which hands {@code device} to the VM; closes the device when it fails. */
    private static void attach(VirtioDevice device, Runnable attachment) {
        try {
            attachment.run();
        } catch (RuntimeException e) {
            device.close();
            throw e;
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * Starts the vCPUs: the kernel begins to boot.
     *
     * @throws IllegalStateException when the VM was already started
     */
    public void start() {
        synchronized (lifecycle) {
            vm.start();
        }
    }

    /**
     * Stops the vCPUs outside guest code and the guest's clock with them; returns once they are
     * stopped. Does nothing when the VM is paused already.
     *
     * @throws IllegalStateException when the VM is not running
     */
    public void pause() {
        synchronized (lifecycle) {
            vm.pause();
        }
    }

    /**
     * Lets a paused VM run on, its clock going on from where the pause stopped it. Does nothing
     * when the VM is running already.
     *
     * @throws IllegalStateException when the VM was never started or has ended
     */
    public void resume() {
        synchronized (lifecycle) {
            if (vm.state() != Vm.State.RUNNING) {
                vm.resume();
            }
        }
    }

    /**
     * Asks the guest to shut down, as Ctrl-Alt-Del on its keyboard does (Linux reboots, which ends
     * the VM with {@link ExitReason#RESET}); returns false when the keyboard buffer is full.
     */
    public boolean shutdown() {
        return platform.i8042().sendCtrlAltDel();
    }

    /** Ends the VM at once, as pulling the power cord would; returns once its vCPUs have stopped. */
    public void kill() {
        vm.stop();
    }

    /**
     * Waits for the VM to end. A reset that follows a kernel panic on the console is reported as
     * {@link ExitReason#GUEST_CRASH} with the panic message.
     *
     * @param timeout how long to wait, or null to wait for as long as it takes
     * @return the exit, or empty when the timeout passed first (or the waiting thread was interrupted)
     */
    public Optional<Exit> awaitExit(Duration timeout) {
        return vm.awaitExit(timeout).map(this::toExit);
    }

    /** The exit, once the VM has ended. */
    public Optional<Exit> exit() {
        return vm.exit().map(this::toExit);
    }

    private Exit toExit(VmExit exit) {
        String p = panic;
        if (p != null && exit.reason() == VmExit.Reason.RESET) {
            exit = new VmExit(VmExit.Reason.GUEST_CRASH, exit.vcpu(), p, exit.registers());
        }
        return new Exit(ExitReason.valueOf(exit.reason().name()), exit.toString());
    }

    public State state() {
        return State.valueOf(vm.state().name());
    }

    /** The time from process start until the guest's /init reported reaching user space, once it has. */
    public Optional<Duration> timeToUserSpace() {
        return platform.bootTimer().timeToUserSpace();
    }

    /** Calls {@code listener} once, when the guest's /init reports reaching user space (through the boot timer port). */
    public void onUserSpace(Consumer<Duration> listener) {
        platform.bootTimer().addListener(listener);
    }

    /** Types {@code bytes} on the serial console; returns how many fit in its buffer. */
    public int sendConsoleInput(byte[] bytes) {
        return platform.com1().receive(bytes);
    }

    /**
     * Calls {@code listener} with each line the guest writes to its console (without the line end),
     * on a vCPU thread: keep it quick, and never wait in it for the VM.
     */
    public void addConsoleLineListener(Consumer<String> listener) {
        platform.com1().addLineListener(listener);
    }

    /** Bytes of console output handed to the {@linkplain Builder#console console stream} so far. */
    public long consoleOutputBytes() {
        return consoleBytes.get();
    }

    /** How many times the vCPUs left guest code so far (for I/O, interrupts, pauses), summed over vCPUs. */
    public long vcpuExits() {
        return vm.vcpuExits();
    }

    /** Ends the VM if it runs, then releases everything it holds. Idempotent. */
    @Override
    public void close() {
        vm.close();
    }

    /**
     * Collects the VM's configuration; {@link #build()} validates it and sets the VM up. Not
     * thread-safe (a builder belongs to one thread).
     */
    public static final class Builder {
        private Path kernel;
        private Path initrd;
        private String commandLine = "";
        private int cpus = DEFAULT_CPUS;
        private long memoryMib = DEFAULT_MEMORY_MIB;
        private OutputStream console = OutputStream.nullOutputStream();
        private BootProtocol protocol = BootProtocol.AUTO;
        private final List<Drive> drives = new ArrayList<>();
        private final List<NetworkInterface> networkInterfaces = new ArrayList<>();

        private Builder() {}

        /** A vmlinux (PVH or 64-bit entry) or a bzImage. */
        public Builder kernel(Path kernel) {
            this.kernel = Objects.requireNonNull(kernel, "kernel");
            return this;
        }

        /** The initial ramdisk, or null for none. */
        public Builder initrd(Path initrd) {
            this.initrd = initrd;
            return this;
        }

        /** Appended to {@link #BASE_COMMAND_LINE}. */
        public Builder commandLine(String commandLine) {
            this.commandLine = Objects.requireNonNull(commandLine, "commandLine");
            return this;
        }

        /** vCPUs, 1 to 254 (default {@value #DEFAULT_CPUS}). */
        public Builder cpus(int cpus) {
            this.cpus = cpus;
            return this;
        }

        /** Guest RAM in MiB (default {@value #DEFAULT_MEMORY_MIB}). */
        public Builder memoryMib(long memoryMib) {
            this.memoryMib = memoryMib;
            return this;
        }

        /** Where the serial console's output goes (not closed by the VM; default: nowhere). */
        public Builder console(OutputStream console) {
            this.console = Objects.requireNonNull(console, "console");
            return this;
        }

        public Builder bootProtocol(BootProtocol protocol) {
            this.protocol = Objects.requireNonNull(protocol, "protocol");
            return this;
        }

        /** Adds a virtio block device; the {@linkplain Drive#root() root} drive is the guest's first disk, {@code /dev/vda}. */
        public Builder drive(Drive drive) {
            drives.add(Objects.requireNonNull(drive, "drive"));
            return this;
        }

        /** Adds a virtio network device, on PCI. */
        public Builder networkInterface(NetworkInterface networkInterface) {
            networkInterfaces.add(Objects.requireNonNull(networkInterface, "networkInterface"));
            return this;
        }

        /**
         * The drives in the order the guest names them (vda, vdb, ...): Linux probes virtio-mmio
         * devices before PCI ones, and the root drive comes first within its transport.
         */
        private List<Drive> drivesInGuestOrder() {
            return drives.stream().sorted(Comparator.comparing((Drive d) -> d.transport() != Transport.MMIO).thenComparing(d -> !d.root()))
                    .toList();
        }

        /** The kernel's whole command line: the base, the virtio-mmio windows, a root= for a root drive, then the caller's part. */
        private String fullCommandLine() {
            StringBuilder line = new StringBuilder(BASE_COMMAND_LINE);
            long mmio = drives.stream().filter(d -> d.transport() == Transport.MMIO).count();
            for (int i = 0; i < mmio; i++) {
                line.append(' ').append(VirtioMmioDevice.commandLineOption(i));
            }
            drives.stream().filter(Drive::root).findFirst()
                    .ifPresent(root -> line.append(" root=/dev/vda ").append(root.readOnly() ? "ro" : "rw"));
            if (!commandLine.isBlank()) {
                line.append(' ').append(commandLine);
            }
            return line.toString();
        }

        private List<DriveConfig> driveConfigs() {
            return drives.stream().map(d -> new DriveConfig(d.id(), d.path(), d.readOnly(), d.root(), d.transport() == Transport.MMIO)).toList();
        }

        private List<NicConfig> nicConfigs() {
            return networkInterfaces.stream()
                    .map(n -> new NicConfig(n.id(), n.hostDevice(), n.tapDescriptor(), n.passtSocket(), n.guestMac())).toList();
        }

        /**
         * @throws IllegalArgumentException when a value is out of range or the drives or network
         *     interfaces clash (the message names the value)
         * @throws VirtualMachineException when the kernel, initrd or command line cannot be booted,
         *     or this host's KVM cannot be used, or a network interface's tap cannot be opened or its
         *     passt not started (the message says what to do)
         */
        public VirtualMachine build() {
            if (kernel == null) {
                throw new IllegalStateException("a VM needs a kernel");
            }
            VmRules.vcpuCount(cpus, "cpus");
            VmRules.memoryMib(memoryMib, "memoryMib");
            VmRules.commandLine(commandLine, "commandLine");
            for (Drive d : drives) {
                VmRules.id(d.id(), "drive id");
                VmRules.diskImage(d.path(), d.readOnly(), "drive " + d.id());
            }
            VmRules.drives(driveConfigs(), i -> "drive " + drives.get(i).id());
            for (NetworkInterface n : networkInterfaces) {
                VmRules.id(n.id(), "network interface id");
                if (n.hostDevice() != null) {
                    VmRules.hostDeviceName(n.hostDevice(), "network interface " + n.id() + " host device");
                }
                if (n.guestMac() != null) {
                    VmRules.macAddress(n.guestMac(), "network interface " + n.id() + " guest MAC");
                }
            }
            VmRules.networkInterfaces(nicConfigs(), i -> "network interface " + networkInterfaces.get(i).id());
            try {
                return new VirtualMachine(this);
            } catch (BootException | KvmUnavailableException | NativeCallException e) {
                throw new VirtualMachineException(e.getMessage(), e);
            }
        }
    }
}
