package dev.panamax.api;

import dev.panamax.boot.BootException;
import dev.panamax.boot.LinuxBoot;
import dev.panamax.kvm.KvmUnavailableException;
import dev.panamax.storage.ImageFormat;
import dev.panamax.sys.CpuSet;
import dev.panamax.sys.HugePageSize;
import dev.panamax.sys.NativeCallException;
import dev.panamax.virtio.balloon.VirtioBalloon;
import dev.panamax.virtio.blk.BlkCounts;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.fs.CacheMode;
import dev.panamax.virtio.net.DropCounts;
import dev.panamax.virtio.net.NetCounts;
import dev.panamax.virtio.net.VirtioNet;
import dev.panamax.virtio.vsock.VirtioVsock;
import dev.panamax.virtio.vsock.VsockCounts;
import dev.panamax.vm.Vcpu;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vmm.BalloonConfig;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.CpuPinning;
import dev.panamax.vmm.DeviceManager;
import dev.panamax.vmm.DeviceSetupException;
import dev.panamax.vmm.DriveConfig;
import dev.panamax.vmm.EntropyConfig;
import dev.panamax.vmm.MachineConfig;
import dev.panamax.vmm.NicConfig;
import dev.panamax.vmm.ShareConfig;
import dev.panamax.vmm.VmBuilder;
import dev.panamax.vmm.VmRules;
import dev.panamax.vmm.MigrationAddress;
import dev.panamax.vmm.MigrationException;
import dev.panamax.vmm.MigrationSource;
import dev.panamax.vmm.VmSnapshot;
import dev.panamax.vmm.VsockConfig;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
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
    public static final String BASE_COMMAND_LINE = VmBuilder.BASE_COMMAND_LINE;
    public static final int DEFAULT_CPUS = 1;
    public static final long DEFAULT_MEMORY_MIB = 256;

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
        /** {@link #migrate} moved it to another process, where it runs on. */
        MIGRATED,
        /** The vCPU met a triple fault. */
        TRIPLE_FAULT,
        /** The guest kernel panicked and said so through the pvpanic device. */
        GUEST_PANIC,
        /** The guest crashed: KVM's crash event, or a kernel panic its console showed before it reset (a guest without a pvpanic driver). */
        GUEST_CRASH,
        /** KVM could not enter the guest. */
        FAIL_ENTRY,
        /** KVM failed, for example on an instruction it could not emulate. */
        INTERNAL_ERROR,
        /** A device failed while handling the guest. */
        DEVICE_ERROR,
        /** A vCPU or device thread made a system call its seccomp filter forbids (the detail names the thread and the call). */
        SECCOMP_VIOLATION,
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

    private final VmBuilder.Machine machine;
    private final Vm vm;
    private final DeviceManager devices;
    private final Object lifecycle = new Object(); // orders start, pause, resume and snapshots against each other
    private volatile MigrationSource migration; // the running or last migration, or null

    VirtualMachine(VmBuilder.Machine machine) {
        this.machine = machine;
        this.vm = machine.vm();
        this.devices = machine.devices();
    }

    /**
     * The Linux thread ids ({@code /proc/PID/task/TID}) of the vCPU threads, in vCPU order, for
     * checking or changing where they run; 0 for each before {@link #start()}.
     */
    public List<Integer> vcpuThreadIds() {
        return vm.vcpus().stream().map(Vcpu::hostThreadId).toList();
    }

    /** Each virtio device's I/O threads' host CPUs as a CPU list ({@code 0-1}), or "" where not pinned; for tests. */
    List<String> ioThreadCpus() {
        return devices.virtioDevices().stream().map(d -> d.ioCpus() == null ? "" : d.ioCpus().toString()).toList();
    }

    /**
     * Writes a snapshot of this VM, which must be paused: devices finish their requests in flight
     * first. The VM stays paused; {@link #resume()} lets it go on, or a {@link #restore} of the
     * snapshot starts another VM where this one stood.
     *
     * @throws IllegalStateException when the VM is not paused, or a diff is asked of a VM that does
     *     not track dirty pages, or its memory is on {@linkplain HugePages huge pages} (a restore would
     *     put it on ordinary pages)
     * @throws IOException when a file cannot be written
     */
    public void snapshot(SnapshotOptions options) throws IOException {
        synchronized (lifecycle) {
            VmSnapshot.create(machine, new VmSnapshot.Create(options.statePath(), options.memoryPath(),
                    options.diff() ? VmSnapshot.Kind.DIFF : VmSnapshot.Kind.FULL, options.disks()));
        }
    }

    /**
     * Copies the pages a diff snapshot holds onto its base's memory file: the base's memory file
     * then restores with the diff's state file. Merge diffs in the order they were taken.
     *
     * @throws VirtualMachineException when the diff's state file is malformed or not a diff, or the
     *     files do not belong together (sizes)
     * @throws IOException when a file cannot be read or written
     */
    public static void mergeMemory(Path diffState, Path diffMemory, Path baseMemory) throws IOException {
        try {
            VmSnapshot.mergeMemory(diffState, diffMemory, baseMemory);
        } catch (StateFormatException | ConfigException e) {
            throw new VirtualMachineException(e.getMessage(), e);
        }
    }

    /**
     * The disk images a snapshot's VM uses, read from its state file and checked with the options'
     * network overrides as a restore checks them, for a caller that must make the disks reachable first.
     *
     * @throws VirtualMachineException when the state file is malformed, a disk is missing, or an
     *     override names no network interface of the snapshot
     * @throws IOException when the file cannot be read
     */
    public static List<Path> snapshotDisks(RestoreOptions options) throws IOException {
        return snapshotConfiguration(options).drives().stream().map(Drive::path).toList();
    }

    /**
     * The configuration of the VM a snapshot restores, with the options' network overrides, read
     * from its state file and checked as a restore checks it.
     *
     * @throws VirtualMachineException when the state file is malformed, a disk is missing, or an
     *     override names no network interface of the snapshot
     * @throws IOException when the file cannot be read
     */
    public static Configuration snapshotConfiguration(RestoreOptions options) throws IOException {
        try {
            return Configuration.of(VmSnapshot.configuration(options.statePath(), options.networkOverrides()));
        } catch (StateFormatException | ConfigException e) {
            throw new VirtualMachineException(e.getMessage(), e);
        }
    }

    /** What this VM was built from. */
    public Configuration configuration() {
        return Configuration.of(machine.config());
    }

    /**
     * A VM as a snapshot saved it, paused or (with {@link RestoreOptions#resume}) running on from
     * where it stood. Every value of the snapshot is checked before the VM is built.
     *
     * @throws VirtualMachineException when the snapshot is malformed, from another format version, or
     *     does not fit this host, or a disk or network interface cannot be opened (the message says which)
     * @throws IOException when a file cannot be read
     */
    public static VirtualMachine restore(RestoreOptions options) throws IOException {
        VmBuilder.Machine machine;
        try {
            machine = VmSnapshot.restore(new VmSnapshot.Restore(options.statePath(), options.memoryPath(), options.eagerMemory(),
                    options.networkOverrides()), options.console());
        } catch (StateFormatException | ConfigException | DeviceSetupException | KvmUnavailableException | NativeCallException e) {
            throw new VirtualMachineException(e.getMessage(), e);
        }
        VirtualMachine restored = new VirtualMachine(machine);
        try {
            if (options.trackDirtyPages()) {
                machine.vm().startDirtyTracking();
            }
            if (options.resume()) {
                restored.resume();
            }
            return restored;
        } catch (RuntimeException e) {
            restored.close();
            throw e;
        }
    }

    /**
     * Moves this VM, running or paused, to a destination waiting with {@link #listenForMigration}
     * (or {@code panamax run --incoming}) on a host that reaches the same disks at the same paths.
     * Memory is copied while the guest runs; the guest stops only for the last dirty pages and
     * its state. Blocks until the migration is over; {@link #migrationStatus} tells how far it is
     * meanwhile, and {@link #cancelMigration} stops it.
     *
     * @return the figures of the completed migration; this VM has then ended with {@link ExitReason#MIGRATED}
     * @throws VirtualMachineException when the migration failed or was cancelled, saying why and
     *     where the guest is: running here as before, unless the commit's answer was lost (the
     *     status is then {@link MigrationStatus.Phase#COMMIT_UNCONFIRMED} and the guest stays
     *     paused here; {@link #resume()} takes it back once the destination does not run it)
     * @throws IllegalStateException when the VM cannot be migrated (not started or ended, a shared
     *     folder, huge pages), or a migration is under way
     */
    public MigrationStatus migrate(MigrationOptions options) {
        MigrationSource source;
        synchronized (lifecycle) {
            MigrationSource current = migration;
            if (current != null && !isOver(current.progress().phase())) {
                throw new IllegalStateException("a migration of this VM is under way");
            }
            MigrationSource.Options sourceOptions;
            try {
                sourceOptions = new MigrationSource.Options(MigrationAddress.parse(options.destination()), options.downtimeTarget(),
                        options.maxRounds(), options.refuseLongerDowntime(), options.timeout());
            } catch (IllegalArgumentException e) {
                throw new VirtualMachineException(e.getMessage(), e);
            }
            source = new MigrationSource(machine, sourceOptions);
            migration = source;
        }
        try {
            return status(source.run());
        } catch (MigrationException e) {
            throw new VirtualMachineException(e.getMessage(), e);
        }
    }

    /** The status of the running or last migration of this VM; empty when it was never migrated. */
    public Optional<MigrationStatus> migrationStatus() {
        MigrationSource current = migration;
        return current == null ? Optional.empty() : Optional.of(status(current.progress()));
    }

    /**
     * Stops a migration under way before its commit: the guest goes on running here. Does nothing
     * when no migration is under way, or its commit was sent.
     */
    public void cancelMigration() {
        MigrationSource current = migration;
        if (current != null) {
            current.cancel();
        }
    }

    /**
     * Listens for a VM that {@link #migrate} (or {@code panamax migrate}) sends; {@link
     * MigrationListener#accept} takes it.
     *
     * @throws VirtualMachineException when the address is malformed
     * @throws IOException when nothing can listen there (in use, no permission)
     */
    public static MigrationListener listenForMigration(IncomingMigrationOptions options) throws IOException {
        return listenForMigration(options, line -> {});
    }

    /** {@link #listenForMigration(IncomingMigrationOptions)}, telling {@code log} each step, a line each. */
    public static MigrationListener listenForMigration(IncomingMigrationOptions options, Consumer<String> log) throws IOException {
        MigrationAddress address;
        try {
            address = MigrationAddress.parse(options.address());
        } catch (IllegalArgumentException e) {
            throw new VirtualMachineException(e.getMessage(), e);
        }
        return new MigrationListener(address.listen(), options, log);
    }

    private static boolean isOver(MigrationSource.Phase phase) {
        return MigrationStatus.Phase.valueOf(phase.name()).over();
    }

    private static MigrationStatus status(MigrationSource.Progress p) {
        return new MigrationStatus(MigrationStatus.Phase.valueOf(p.phase().name()), p.round(), p.bytesSent(), p.lastRoundPages(),
                p.dirtyPagesPerSecond(), p.bandwidthBytesPerSecond(), p.expectedDowntimeMillis(), p.downtimeMillis(), p.totalMillis(),
                p.error());
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
            MigrationSource current = migration;
            if (current != null && current.progress().phase() == MigrationSource.Phase.COMMIT_UNCONFIRMED) {
                try {
                    current.resumeHere(); // takes the disks back first, which fails while the destination holds them
                } catch (MigrationException e) {
                    throw new VirtualMachineException(e.getMessage(), e);
                }
                return;
            }
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
        return devices.i8042().sendCtrlAltDel();
    }

    /** Ends the VM at once, as pulling the power cord would; returns once its vCPUs have stopped. */
    public void kill() {
        vm.stop();
    }

    /**
     * Waits for the VM to end. A guest kernel's panic ends the VM at once through the pvpanic device:
     * {@link ExitReason#GUEST_PANIC}, with the console's panic message when it shows one. Only a guest
     * without a pvpanic driver (one that never read the device) has its panic found on its console: a
     * reset that follows a kernel panic message there is {@link ExitReason#GUEST_CRASH}.
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
        Optional<String> panic = devices.console().panic();
        if (exit.reason() == VmExit.Reason.GUEST_PANIC && panic.isPresent()) {
            exit = new VmExit(exit.reason(), exit.vcpu(), exit.detail() + ": " + panic.get(), exit.registers());
        } else if (panic.isPresent() && exit.reason() == VmExit.Reason.RESET && !devices.pvPanic().driverSeen()) {
            exit = new VmExit(VmExit.Reason.GUEST_CRASH, exit.vcpu(), panic.get(), exit.registers());
        }
        return new Exit(ExitReason.valueOf(exit.reason().name()), exit.toString());
    }

    public State state() {
        return State.valueOf(vm.state().name());
    }

    /**
     * Bytes of the guest's RAM that are in the host's RAM now (what the guest touched and the host
     * has not reclaimed), measured from {@code /proc/self/smaps}: this process's resident set minus
     * this is the VMM's own memory.
     *
     * @throws IOException when {@code /proc/self/smaps} cannot be read
     */
    public long guestMemoryResidentBytes() throws IOException {
        return vm.memory().residentBytes();
    }

    /** The time from process start until the guest's /init reported reaching user space, once it has. */
    public Optional<Duration> timeToUserSpace() {
        return devices.bootTimer().timeToUserSpace();
    }

    /** Calls {@code listener} once, when the guest's /init reports reaching user space (through the boot timer port). */
    public void onUserSpace(Consumer<Duration> listener) {
        devices.bootTimer().addListener(listener);
    }

    /** Types {@code bytes} on the serial console; returns how many fit in its buffer. */
    public int sendConsoleInput(byte[] bytes) {
        return devices.serial().receive(bytes);
    }

    /**
     * Calls {@code listener} with each line the guest writes to its console (without the line end),
     * on a vCPU thread: keep it quick, and never wait in it for the VM.
     */
    public void addConsoleLineListener(Consumer<String> listener) {
        devices.console().addLineListener(listener);
    }

    /** Bytes of console output handed to the {@linkplain Builder#console console stream} so far. */
    public long consoleOutputBytes() {
        return devices.console().bytesWritten();
    }

    /**
     * One line per vCPU on where it stands: its exits by kind and, once the VM has ended (before it
     * is closed), where each stopped and whether it was halted. For the report on a guest that had
     * to be killed.
     */
    public List<String> describeVcpus() {
        return vm.vcpus().stream().map(Vcpu::describe).toList();
    }

    /**
     * One line per running virtio queue on how far the guest's driver and the device have come
     * (entries made available and not taken, taken and not used): for the same report.
     */
    public List<String> describeQueues() {
        return devices.virtioDevices().stream().flatMap(d -> d.describeQueues().stream()).toList();
    }

    /** How many times the vCPUs left guest code so far (for I/O, interrupts, pauses), summed over vCPUs. */
    public long vcpuExits() {
        return vm.vcpuExits();
    }

    /**
     * Changes drive {@code id}'s rate limit while the VM runs (or before it starts): {@code limiter}
     * replaces the old one whole (null: no limit). A bucket whose settings are unchanged keeps its
     * tokens; a new or changed one starts full. Requests waiting under the old limit are looked at
     * again under the new one at once.
     *
     * @throws IllegalArgumentException when the VM has no drive {@code id}
     */
    public void updateDrive(String id, RateLimiter limiter) {
        if (!(devices.virtio("virtio-blk", id) instanceof VirtioBlk blk)) {
            throw new IllegalArgumentException("the VM has no drive " + id);
        }
        blk.rateLimiter().update(RateLimiter.toDevice(limiter));
    }

    /**
     * Changes network interface {@code id}'s receive and transmit rate limits while the VM runs, as
     * {@link #updateDrive} does a drive's (null: no limit).
     *
     * @throws IllegalArgumentException when the VM has no network interface {@code id}
     */
    public void updateNetworkInterface(String id, RateLimiter rx, RateLimiter tx) {
        if (!(devices.virtio("virtio-net", id) instanceof VirtioNet net)) {
            throw new IllegalArgumentException("the VM has no network interface " + id);
        }
        net.receiveLimiter().update(RateLimiter.toDevice(rx));
        net.transmitLimiter().update(RateLimiter.toDevice(tx));
    }

    /**
     * The rate limit in force on drive {@code id} (null buckets: no limit of that kind).
     *
     * @throws IllegalArgumentException when the VM has no drive {@code id}
     */
    public RateLimiter driveRateLimiter(String id) {
        if (!(devices.virtio("virtio-blk", id) instanceof VirtioBlk blk)) {
            throw new IllegalArgumentException("the VM has no drive " + id);
        }
        return RateLimiter.ofDevice(blk.rateLimiter().limit());
    }

    /**
     * The receive and transmit rate limits in force on network interface {@code id}, in that order.
     *
     * @throws IllegalArgumentException when the VM has no network interface {@code id}
     */
    public List<RateLimiter> networkInterfaceRateLimiters(String id) {
        if (!(devices.virtio("virtio-net", id) instanceof VirtioNet net)) {
            throw new IllegalArgumentException("the VM has no network interface " + id);
        }
        return List.of(RateLimiter.ofDevice(net.receiveLimiter().limit()), RateLimiter.ofDevice(net.transmitLimiter().limit()));
    }

    /**
     * How many times drive {@code id}'s requests were held back by its rate limit (Firecracker's
     * {@code rate_limiter_throttled_events}).
     *
     * @throws IllegalArgumentException when the VM has no drive {@code id}
     */
    public long driveThrottledEvents(String id) {
        if (!(devices.virtio("virtio-blk", id) instanceof VirtioBlk blk)) {
            throw new IllegalArgumentException("the VM has no drive " + id);
        }
        return blk.rateLimiter().throttledEvents();
    }

    /**
     * What the vCPUs and devices did so far, under Firecracker's metric names (see {@link VmMetrics});
     * cheap enough to call often, at any state.
     */
    public VmMetrics metrics() {
        Vm v = vm;
        VmMetrics.Vcpus vcpus = new VmMetrics.Vcpus(v.vcpuExits(), v.vcpuExits(Vcpu.ExitKind.IO_IN), v.vcpuExits(Vcpu.ExitKind.IO_OUT),
                v.vcpuExits(Vcpu.ExitKind.MMIO_READ), v.vcpuExits(Vcpu.ExitKind.MMIO_WRITE), v.vcpuExits(Vcpu.ExitKind.HLT),
                v.vcpuExits(Vcpu.ExitKind.SHUTDOWN), v.vcpuExits(Vcpu.ExitKind.HLT) + v.vcpuExits(Vcpu.ExitKind.SHUTDOWN)
                        + v.vcpuExits(Vcpu.ExitKind.FAILURE));
        Map<String, VmMetrics.Block> drives = new LinkedHashMap<>();
        Map<String, VmMetrics.Net> nics = new LinkedHashMap<>();
        VmMetrics.Vsock vsock = null;
        for (DeviceManager.Device d : devices.devices()) {
            String[] path = d.id().split("/"); // a virtio device's id ends in KIND/NAME, NAME the drive's or interface's id
            if (path.length < 2) {
                continue;
            }
            String name = path[path.length - 1];
            switch (devices.virtio(path[path.length - 2], name)) {
                case VirtioBlk blk -> {
                    BlkCounts c = blk.counts();
                    drives.put(name, new VmMetrics.Block(c.readCount(), c.readBytes(), c.writeCount(), c.writeBytes(), c.flushCount(),
                            c.invalidRequests(), blk.ioErrors(), blk.rateLimiter().throttledEvents()));
                }
                case VirtioNet net -> {
                    NetCounts c = net.counts();
                    DropCounts dropped = net.dropped();
                    nics.put(name, new VmMetrics.Net(c.receivedFrames(), c.receivedBytes(), dropped.toGuest(),
                            net.receiveLimiter().throttledEvents(), c.transmittedFrames(), c.transmittedBytes(), dropped.fromGuest(),
                            net.transmitLimiter().throttledEvents()));
                }
                case VirtioVsock vs -> {
                    VsockCounts c = vs.counts();
                    vsock = new VmMetrics.Vsock(c.toGuestBytes(), c.fromGuestBytes(), c.dropped(), c.reset(), c.refused());
                }
                case null, default -> { } // another device: its counts are not among Firecracker's
            }
        }
        return new VmMetrics(vcpus, drives, nics, consoleOutputBytes(), vsock);
    }

    /** The VM's balloon device. */
    private VirtioBalloon balloonDevice() {
        if (!(devices.virtio("virtio-balloon", VmBuilder.BALLOON_ID) instanceof VirtioBalloon balloon)) {
            throw new IllegalStateException("the VM has no balloon; add one with Builder.balloon before it is built");
        }
        return balloon;
    }

    /**
     * The balloon as it stands: its target now (which {@link #setBalloonTarget} changes), its
     * options and its statistics interval now.
     *
     * @throws IllegalStateException when the VM has no balloon
     */
    public Balloon balloon() {
        VirtioBalloon b = balloonDevice();
        return new Balloon(mibOfPages(b.targetPages()), b.deflateOnOom(), b.statsIntervalSeconds());
    }

    /**
     * Sets the balloon's target: the guest's driver gives the host pages until the balloon holds
     * {@code amountMib} MiB, or takes them back down to it. It works at the guest's pace; watch
     * {@link #balloonStatistics}'s actual size.
     *
     * @throws IllegalArgumentException when {@code amountMib} is more than the guest's memory
     * @throws IllegalStateException when the VM has no balloon
     */
    public void setBalloonTarget(long amountMib) {
        VirtioBalloon b = balloonDevice();
        VmRules.balloonAmount(amountMib, machine.config().memoryMib(), "amount_mib");
        b.setTargetPages(VirtioBalloon.pagesOfMib(amountMib));
    }

    /**
     * Changes how often the guest is asked for its memory statistics.
     *
     * @throws IllegalArgumentException when {@code seconds} is out of range (1 to a day)
     * @throws IllegalStateException when the VM has no balloon, or its balloon was built without
     *     statistics, or {@code seconds} is 0 (statistics cannot be turned off)
     */
    public void setBalloonStatisticsInterval(int seconds) {
        VirtioBalloon b = balloonDevice();
        VmRules.balloonStatsInterval(seconds, "stats_polling_interval_s");
        b.setStatsIntervalSeconds(seconds);
    }

    /**
     * The balloon's target and actual sizes and the guest's last memory statistics.
     *
     * @throws IllegalStateException when the VM has no balloon, or it was built without statistics
     */
    public BalloonStatistics balloonStatistics() {
        VirtioBalloon b = balloonDevice();
        if (!b.statsEnabled()) {
            throw new IllegalStateException("the balloon has no statistics: it was built with stats_polling_interval_s 0");
        }
        long target = Integer.toUnsignedLong(b.targetPages());
        long actual = Integer.toUnsignedLong(b.actualPages());
        return new BalloonStatistics(target, actual, mibOfPages(target), mibOfPages(actual), b.statistics());
    }

    private static long mibOfPages(long pages) {
        return pages >> (20 - VirtioBalloon.PAGE_SHIFT);
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
        private boolean trackDirtyPages;
        private VsockConfig vsock;
        private EntropyConfig entropy;
        private final List<SharedFolder> shares = new ArrayList<>();
        private CpuAffinity cpuAffinity = CpuAffinity.NONE;
        private HugePages hugePages = HugePages.NONE;
        private Balloon balloon;
        private boolean seccomp = true;

        private Builder() {}

        /** Adds a memory balloon (at most one; a second call replaces it, null removes it). */
        public Builder balloon(Balloon balloon) {
            this.balloon = balloon;
            return this;
        }

        /**
         * Pins the vCPU threads and the device I/O threads to host CPUs (default: {@link
         * CpuAffinity#NONE}, nothing pinned). Checked by {@link #build()}: each vCPU index exists,
         * each CPU is online.
         */
        public Builder cpuAffinity(CpuAffinity affinity) {
            this.cpuAffinity = Objects.requireNonNull(affinity, "affinity");
            return this;
        }

        /**
         * Maps guest memory from the host's reserved huge pages (default: {@link HugePages#NONE},
         * ordinary pages). Checked by {@link #build()}: the memory is a multiple of the page size,
         * and the host has enough free reserved pages.
         */
        public Builder hugePages(HugePages hugePages) {
            this.hugePages = Objects.requireNonNull(hugePages, "hugePages");
            return this;
        }

        /**
         * Whether the vCPU threads and the device I/O threads confine themselves with seccomp
         * filters, each to the system calls its work needs (default: on). A forbidden call fails
         * with EPERM, is logged with the thread and the call, and ends the VM.
         */
        public Builder seccomp(boolean on) {
            this.seccomp = on;
            return this;
        }

        /** Tracks the pages the guest and the devices write, which {@linkplain SnapshotOptions#diff diff snapshots} need (default: off). */
        public Builder trackDirtyPages(boolean track) {
            this.trackDirtyPages = track;
            return this;
        }

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

        /**
         * Adds a vsock device (at most one; a second call replaces it), with Firecracker's host side:
         * host programs connect to the Unix socket {@code udsPath} and write {@code CONNECT <port>} and a newline
         * to reach the guest's listener on that port; the guest's connections to host port P go to
         * the Unix socket {@code udsPath_P}. Nothing may be at {@code udsPath} when the VM is built;
         * closing the VM removes it.
         *
         * @param guestCid the guest's context ID, 3 to 2^32-2
         */
        public Builder vsock(long guestCid, Path udsPath) {
            this.vsock = new VsockConfig(guestCid, Objects.requireNonNull(udsPath, "udsPath"));
            return this;
        }

        /**
         * Adds an entropy device (virtio-rng; at most one, a second call replaces it): the guest's
         * {@code /dev/hwrng} gives the host's random bytes ({@code getrandom}), at most as fast as
         * {@code limiter} lets them through (null or {@link RateLimiter#NONE}: no limit), as
         * Firecracker's {@code PUT /entropy}.
         */
        public Builder entropy(RateLimiter limiter) {
            this.entropy = new EntropyConfig(RateLimiter.toDevice(limiter));
            return this;
        }

        /** {@link #entropy(RateLimiter)} without a limit. */
        public Builder entropy() {
            return entropy(null);
        }

        /**
         * Adds a shared folder: the guest mounts {@code path} with {@code mount -t virtiofs TAG DIR}
         * (at most {@value VmRules#MAX_SHARES}, each tag once). A snapshot keeps the guest's open files
         * and the names it knows by their paths in the folder, not the files themselves.
         */
        public Builder share(SharedFolder share) {
            shares.add(Objects.requireNonNull(share, "share"));
            return this;
        }

        /** {@link #share(SharedFolder)} of {@code new SharedFolder(path, tag, readOnly)}. */
        public Builder share(Path path, String tag, boolean readOnly) {
            return share(new SharedFolder(path, tag, readOnly));
        }

        /** Adds a virtio network device, on PCI. */
        public Builder networkInterface(NetworkInterface networkInterface) {
            networkInterfaces.add(Objects.requireNonNull(networkInterface, "networkInterface"));
            return this;
        }

        /** How this builder's users know its values, in the rules' messages. */
        private static final VmRules.Wording WORDING = new VmRules.Wording("cpus", "memoryMib", "commandLine", "drive id",
                "network interface id", "drives and network interfaces", "cpuAffinity", "hugePages");

        /** The affinity as the VMM applies it. */
        private static CpuPinning pinning(CpuAffinity affinity) {
            Map<Integer, CpuSet> vcpus = new HashMap<>();
            affinity.vcpus().forEach((vcpu, cpus) -> vcpus.put(vcpu, cpuSet(cpus)));
            return new CpuPinning(vcpus, affinity.ioThreads().isEmpty() ? null : cpuSet(affinity.ioThreads()));
        }

        private static CpuSet cpuSet(Set<Integer> cpus) {
            try {
                return CpuSet.of(cpus.stream().mapToInt(Integer::intValue).toArray());
            } catch (IllegalArgumentException e) {
                throw new ConfigException("cpuAffinity", e.getMessage());
            }
        }

        /** The drives as the VMM builds them. */
        private List<DriveConfig> driveConfigs() {
            return drives.stream().map(d -> new DriveConfig(d.id(), d.path(), d.readOnly(), d.root(), d.transport() == Transport.MMIO,
                    RateLimiter.toDevice(d.rateLimiter()), d.format() == null ? null : ImageFormat.valueOf(d.format().name()))).toList();
        }

        /** The network interfaces as the VMM builds them. */
        private List<NicConfig> nicConfigs() {
            return networkInterfaces.stream()
                    .map(n -> new NicConfig(n.id(), n.hostDevice(), n.tapDescriptor(), n.passtSocket(), n.guestMac(),
                            RateLimiter.toDevice(n.rxRateLimiter()), RateLimiter.toDevice(n.txRateLimiter()))).toList();
        }

        /**
         * @throws IllegalArgumentException when a value is out of range or the drives or network
         *     interfaces clash (the message names the value), or the host lacks what the VM asks
         *     of it: an online CPU it is pinned to, enough free huge pages
         * @throws VirtualMachineException when the kernel, initrd or command line cannot be booted,
         *     or this host's KVM cannot be used, or a network interface's tap cannot be opened or its
         *     passt not started (the message says what to do)
         */
        public VirtualMachine build() {
            if (kernel == null) {
                throw new IllegalStateException("a VM needs a kernel");
            }
            MachineConfig config = new MachineConfig(kernel, initrd, commandLine, cpus, memoryMib, LinuxBoot.Protocol.valueOf(protocol.name()),
                    driveConfigs(), nicConfigs(), vsock,
                    shares.stream().map(s -> new ShareConfig(s.path(), s.tag(), s.readOnly(), CacheMode.valueOf(s.cache().name()))).toList(),
                    pinning(cpuAffinity), switch (hugePages) {
                        case NONE -> null;
                        case SIZE_2M -> HugePageSize.SIZE_2M;
                        case SIZE_1G -> HugePageSize.SIZE_1G;
                    }, entropy, balloon == null ? null : new BalloonConfig(balloon.amountMib(), balloon.deflateOnOom(),
                            balloon.statsPollingIntervalSeconds()), seccomp);
            VmRules.machine(config, WORDING);
            try {
                VmBuilder.Machine machine = VmBuilder.build(config, console);
                if (trackDirtyPages) {
                    machine.vm().startDirtyTracking();
                }
                return new VirtualMachine(machine);
            } catch (BootException | DeviceSetupException | KvmUnavailableException | NativeCallException e) {
                throw new VirtualMachineException(e.getMessage(), e);
            }
        }
    }
}
