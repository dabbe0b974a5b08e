package dev.panamax.vmm;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.qcow2.Qcow2Image;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.fs.CacheMode;
import dev.panamax.virtio.fs.VirtioFs;
import dev.panamax.virtio.net.VirtioNet;
import dev.panamax.virtio.ratelimit.BucketSpec;
import dev.panamax.virtio.ratelimit.RateLimit;
import dev.panamax.vm.DirtyPages;
import dev.panamax.vm.MemoryFile;
import dev.panamax.vm.MemoryMap;
import dev.panamax.vm.Vm;
import dev.panamax.vm.state.StateFile;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Snapshots of a whole VM and their restore: the state file ({@link StateFile}; the layout is in
 * {@code docs/snapshot-format.md}) holds the machine's configuration, the memory map, the VM's
 * KVM state (vCPUs, irqchip, PIT, clock) and every device's state in the {@link DeviceManager}'s
 * order; guest memory is in a file of its own, mapped copy-on-write by a restore.
 *
 * <p>A restore rebuilds the VM from the saved configuration (disks reopened by path and locked as
 * at boot, taps reopened by name, passt restarted) and then hands each part its state, every value
 * validated on the way in. A restore that fails anywhere leaves no VM behind.
 */
public final class VmSnapshot {
    private VmSnapshot() {}

    /** Full: all of guest memory. Diff: only the pages written since the last snapshot (or since tracking began). */
    public enum Kind { FULL, DIFF }

    /**
     * What to write.
     *
     * @param statePath the state file
     * @param memoryPath the memory file
     * @param withDisks also take a qcow2 snapshot of every writable drive, which the restore applies
     */
    public record Create(Path statePath, Path memoryPath, Kind kind, boolean withDisks) {
        public Create {
            Objects.requireNonNull(statePath, "statePath");
            Objects.requireNonNull(memoryPath, "memoryPath");
            Objects.requireNonNull(kind, "kind");
        }

        public Create(Path statePath, Path memoryPath, Kind kind) {
            this(statePath, memoryPath, kind, false);
        }

        /** The name of the drives' qcow2 snapshots: one per state file, replaced when it is written again. */
        String diskSnapshotName() {
            return "panamax:" + statePath.toAbsolutePath();
        }
    }

    /**
     * What to restore from.
     *
     * @param eagerMemory read all of guest memory at once rather than page by page as the guest touches it
     * @param tapOverrides for a network interface id, the host tap device to use instead of the saved one
     */
    public record Restore(Path statePath, Path memoryPath, boolean eagerMemory, Map<String, String> tapOverrides) {
        public Restore {
            Objects.requireNonNull(statePath, "statePath");
            Objects.requireNonNull(memoryPath, "memoryPath");
            tapOverrides = Map.copyOf(tapOverrides);
        }
    }

    /**
     * Why a VM on huge pages is not snapshotted: a restore maps the memory file copy-on-write, which
     * gives the guest ordinary pages, and the state file does not record the page size.
     */
    public static final String HUGE_PAGES_REFUSAL = "a VM whose memory is on huge pages cannot be snapshotted yet: a restore maps"
            + " the memory file copy-on-write on ordinary pages, so the guest would silently lose its huge pages; run the VM on"
            + " ordinary pages (huge_pages None) to snapshot it";

    /** Limits on what a state file may claim, far above any VM Panamax builds. */
    private static final int MAX_PATH = 4096;
    private static final int MAX_DRIVES = 64;
    private static final int MAX_NICS = 64;
    private static final int MAX_DEVICES = 256;

    /** How a network interface reached the host when it was saved. */
    private static final int HOST_TAP = 0;
    private static final int HOST_TAP_FD = 1;
    private static final int HOST_PASST = 2;
    private static final int HOST_PASST_SOCKET = 3;

    /**
     * Writes a snapshot of {@code machine}, whose VM must be paused. Devices finish their requests in
     * flight first, and go on after.
     *
     * @throws IllegalStateException when the VM is not paused, or a diff is asked of a VM that does not track dirty pages
     * @throws IOException when a file cannot be written, or a snapshot with disks meets a drive that is not qcow2
     */
    public static void create(VmBuilder.Machine machine, Create options) throws IOException {
        Vm vm = machine.vm();
        if (vm.state() != Vm.State.PAUSED) {
            throw new IllegalStateException("a snapshot is taken of a paused VM, and this one is " + vm.state().name().toLowerCase());
        }
        requireSavable(machine);
        if (options.kind() == Kind.DIFF && !vm.tracksDirtyPages()) {
            throw new IllegalStateException("a diff snapshot needs dirty page tracking, and this VM does not track dirty pages"
                    + " (turn it on when building the VM: track_dirty_pages)");
        }
        if (options.kind() == Kind.DIFF && !vm.hasDiffBase()) {
            throw new IllegalStateException("a live migration took the pages written since the last snapshot, so a diff would miss"
                    + " them: take a full snapshot now, and diffs of it after");
        }
        List<Stateful> quiesced = new ArrayList<>();
        try {
            quiesce(machine, quiesced);
            String diskSnapshot = "";
            if (options.withDisks()) {
                diskSnapshot = options.diskSnapshotName();
                for (VirtioBlk drive : writableDrives(machine.devices())) {
                    drive.snapshotDisk(diskSnapshot);
                }
            }
            String disks = diskSnapshot;
            StateWriter out = new StateWriter();
            out.section("machine", w -> writeMachine(w, machine, options.kind(), disks));
            MemoryMap map;
            DirtyPages dirty = null;
            if (options.kind() == Kind.DIFF) {
                dirty = vm.takeDirtyPages();
                map = MemoryFile.writeDiff(vm.memory(), dirty, options.memoryPath());
            } else {
                if (vm.tracksDirtyPages()) {
                    vm.takeDirtyPages(); // this snapshot is the base of the next diff
                }
                map = MemoryFile.writeFull(vm.memory(), options.memoryPath());
                vm.diffBaseRestored();
            }
            DirtyPages written = dirty;
            out.section("memory", w -> {
                w.bool(written != null);
                map.saveState(w);
                if (written != null) {
                    written.saveState(w);
                }
            });
            saveStates(out, machine);
            StateFile.write(options.statePath(), out.toByteArray());
        } finally {
            resumeWork(quiesced);
        }
    }

    /** Quiesces every device in the device manager's order, adding each to {@code quiesced} as it is done. */
    static void quiesce(VmBuilder.Machine machine, List<Stateful> quiesced) {
        for (DeviceManager.Device d : machine.devices().devices()) {
            Stateful part = stateful(d);
            part.quiesce();
            quiesced.add(part);
        }
    }

    /** Lets the devices {@link #quiesce} quiesced work again, and forgets them. */
    static void resumeWork(List<Stateful> quiesced) {
        for (Stateful part : quiesced) {
            part.resumeWork();
        }
        quiesced.clear();
    }

    /**
     * Builds the VM a snapshot was taken of, with every state restored, paused: the caller resumes
     * it (or leaves it paused).
     *
     * @throws StateFormatException when the snapshot is malformed or does not fit this host
     * @throws ConfigException when the saved configuration breaks a rule here (a disk that is gone)
     * @throws DeviceSetupException when a disk or network interface cannot be opened
     * @throws IOException when a file cannot be read
     */
    public static VmBuilder.Machine restore(Restore options, OutputStream console) throws IOException {
        StateReader in = StateFile.read(options.statePath());
        StateReader machineSection = in.section("machine");
        MachineConfig config = readMachine(machineSection, options.tapOverrides());
        String diskSnapshot = machineSection.string(MAX_PATH + 16, "disk snapshot name");
        machineSection.end();
        MemoryMap map = readMemory(in.section("memory"), config, Files.size(options.memoryPath())).map();
        if (!diskSnapshot.isEmpty()) {
            revertDisks(config, diskSnapshot);
        }
        VmBuilder.Machine machine;
        try {
            machine = VmBuilder.buildForRestore(config, console, vm -> {
                try {
                    map.mapInto(vm, options.memoryPath(), options.eagerMemory());
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
        try {
            restoreStates(in, machine);
            in.end();
            machine.vm().startPaused();
            return machine;
        } catch (RuntimeException e) {
            machine.vm().close();
            throw e;
        }
    }

    /** Refuses a VM whose state cannot be carried to another VM: one on huge pages. */
    static void requireSavable(VmBuilder.Machine machine) {
        if (machine.config().hugePages() != null) {
            throw new IllegalStateException(HUGE_PAGES_REFUSAL);
        }
    }

    /** The sections {@code vm} (KVM's state) and {@code devices} (each device's, in the device manager's order) of a paused, quiesced VM. */
    static void saveStates(StateWriter out, VmBuilder.Machine machine) {
        List<DeviceManager.Device> devices = machine.devices().devices();
        out.section("vm", machine.vm()::saveState);
        out.section("devices", w -> {
            w.i32(devices.size());
            for (DeviceManager.Device d : devices) {
                w.section(d.id(), stateful(d));
            }
        });
    }

    /** Takes what {@link #saveStates} wrote into a VM built from the same configuration, not started. */
    static void restoreStates(StateReader in, VmBuilder.Machine machine) {
        // The interrupt controllers and vCPUs first, so that an interrupt a device raises again
        // on restore (a virtio queue's, through MSI) lands in the restored local APIC.
        in.section("vm", machine.vm()::restoreState);
        List<DeviceManager.Device> devices = machine.devices().devices();
        in.section("devices", r -> {
            int count = r.count(MAX_DEVICES, "device");
            if (count != devices.size()) {
                throw r.fail("the snapshot has " + count + " devices, and its configuration builds " + devices.size());
            }
            for (DeviceManager.Device d : devices) {
                r.section(d.id(), stateful(d));
            }
        });
    }

    /**
     * The configuration a snapshot's VM was built from, read from its state file and checked as a
     * restore checks it, with {@code tapOverrides} applied.
     */
    public static MachineConfig configuration(Path statePath, Map<String, String> tapOverrides) throws IOException {
        return readMachine(StateFile.read(statePath).section("machine"), tapOverrides);
    }

    /** A snapshot's memory section: the map, and for a diff the pages its memory file holds. */
    private record Memory(MemoryMap map, DirtyPages pages) {}

    private static Memory readMemory(StateReader r, MachineConfig config, long memoryFileLength) {
        boolean diff = r.bool("diff memory");
        MemoryMap map = MemoryMap.readState(r, ramLayout(config), memoryFileLength);
        DirtyPages pages = diff ? DirtyPages.readState(r, map) : null;
        r.end();
        return new Memory(map, pages);
    }

    /** The guest RAM a VM of {@code config} has, which a saved memory map must cover exactly. */
    static List<MemoryMap.RamRange> ramLayout(MachineConfig config) {
        return LinuxBoot.memoryRegions(config.memoryMib() << 20).stream()
                .map(region -> new MemoryMap.RamRange(region.address(), region.size())).toList();
    }

    /**
     * Copies the pages a diff snapshot holds onto the memory file of its base (a full snapshot,
     * or a base with earlier diffs merged), which then restores with the diff's state file.
     *
     * @throws StateFormatException when the diff's state file is malformed, or not a diff
     */
    public static void mergeMemory(Path diffState, Path diffMemory, Path baseMemory) throws IOException {
        StateReader in = StateFile.read(diffState);
        MachineConfig config = readMachine(in.section("machine"), Map.of());
        Memory memory = readMemory(in.section("memory"), config, Files.size(diffMemory));
        if (memory.pages() == null) {
            throw new StateFormatException(diffState + " is a full snapshot: restore it with its own memory file, there is nothing to merge");
        }
        MemoryFile.merge(diffMemory, memory.pages(), memory.map(), baseMemory);
    }

    /** The virtio-blk devices the guest can write. */
    private static List<VirtioBlk> writableDrives(DeviceManager devices) {
        List<VirtioBlk> drives = new ArrayList<>();
        for (VirtioDevice device : devices.virtioDevices()) {
            if (device instanceof VirtioBlk blk && !blk.isReadOnly()) {
                drives.add(blk);
            }
        }
        return drives;
    }

    /** Each writable drive back to its qcow2 snapshot {@code name}, taken with the VM snapshot, before the drives open. */
    private static void revertDisks(MachineConfig config, String name) throws IOException {
        for (DriveConfig drive : config.drives()) {
            if (drive.readOnly()) {
                continue;
            }
            try (BlockBackend image = Images.open(drive.image(), Images.OpenOptions.readWrite().withFormat(drive.format()).withLock())) {
                if (!(image instanceof Qcow2Image qcow2) || qcow2.snapshots().stream().noneMatch(s -> s.name().equals(name))) {
                    throw new StateFormatException("drive " + drive.id() + " (" + drive.image() + ") has no qcow2 snapshot '" + name
                            + "', which this VM snapshot was taken with: the image was replaced or its snapshot deleted");
                }
                qcow2.applySnapshot(name);
            }
        }
    }

    static Stateful stateful(DeviceManager.Device d) {
        if (d.device() instanceof Stateful s) {
            return s;
        }
        throw new IllegalStateException("device " + d.id() + " (" + d.device().getClass().getSimpleName() + ") has no saved state");
    }

    /** The configuration, with each network interface's actual MAC address (a random one must come back the same). */
    static void writeMachine(StateWriter w, VmBuilder.Machine machine, Kind kind, String diskSnapshot) {
        MachineConfig c = machine.config();
        w.u8(kind.ordinal());
        w.string(c.kernel().toString()).string(c.initrd() == null ? "" : c.initrd().toString()).string(c.commandLine());
        w.i32(c.cpus()).i64(c.memoryMib()).string(c.protocol().name());
        w.i32(c.drives().size());
        for (DriveConfig d : c.drives()) {
            w.string(d.id()).string(d.image().toAbsolutePath().toString()).bool(d.readOnly()).bool(d.root()).bool(d.mmio());
            writeLimit(w, device(machine.devices(), "virtio-blk", d.id(), VirtioBlk.class).rateLimiter().limit());
        }
        w.i32(c.nics().size());
        for (NicConfig n : c.nics()) {
            w.string(n.id());
            if (n.tapName() != null) {
                w.u8(HOST_TAP).string(n.tapName());
            } else if (n.tapFd() >= 0) {
                w.u8(HOST_TAP_FD).string("");
            } else if (n.passtSocket() != null) {
                w.u8(HOST_PASST_SOCKET).string(n.passtSocket().toAbsolutePath().toString());
            } else {
                w.u8(HOST_PASST).string("");
            }
            VirtioNet net = device(machine.devices(), "virtio-net", n.id(), VirtioNet.class);
            w.string(net.mac().toString());
            writeLimit(w, net.receiveLimiter().limit());
            writeLimit(w, net.transmitLimiter().limit());
        }
        w.bool(c.vsock() != null);
        if (c.vsock() != null) {
            w.i64(c.vsock().guestCid()).string(c.vsock().udsPath().toAbsolutePath().toString());
        }
        w.bool(c.entropy() != null);
        if (c.entropy() != null) {
            writeLimit(w, c.entropy().rateLimit());
        }
        // The shared folders; what the guest holds of each is its virtio-fs device's state.
        w.i32(c.shares().size());
        for (ShareConfig share : c.shares()) {
            w.string(share.directory().toAbsolutePath().toString()).string(share.tag()).bool(share.readOnly()).string(share.cache().name());
        }
        // The balloon's options; its target, actual size and interval are the device's state.
        w.bool(c.balloon() != null);
        if (c.balloon() != null) {
            w.i64(c.balloon().amountMib()).bool(c.balloon().deflateOnOom()).i32(c.balloon().statsIntervalSeconds());
        }
        w.string(diskSnapshot);
    }

    /** The virtio device of {@code kind} named {@code name}, which the machine's configuration says is there. */
    private static <T extends VirtioDevice> T device(DeviceManager devices, String kind, String name, Class<T> type) {
        if (type.isInstance(devices.virtio(kind, name))) {
            return type.cast(devices.virtio(kind, name));
        }
        throw new IllegalStateException("no " + kind + " device for " + name);
    }

    /** The limit in force when the VM paused (a PATCH may have changed the configured one); each bucket present or not. */
    private static void writeLimit(StateWriter w, RateLimit limit) {
        for (BucketSpec bucket : new BucketSpec[] {limit.bandwidth(), limit.ops()}) {
            w.bool(bucket != null);
            if (bucket != null) {
                w.i64(bucket.size()).i64(bucket.oneTimeBurst()).i64(bucket.refillTimeMillis());
            }
        }
    }

    private static RateLimit readLimit(StateReader r, String owner) {
        BucketSpec[] buckets = new BucketSpec[2];
        String[] names = {"bandwidth", "operations"};
        for (int i = 0; i < 2; i++) {
            if (r.bool(owner + "'s " + names[i] + " bucket")) {
                long size = r.i64(owner + "'s " + names[i] + " bucket size");
                long burst = r.i64(owner + "'s " + names[i] + " bucket one-time burst");
                long refill = r.i64(owner + "'s " + names[i] + " bucket refill time");
                try {
                    buckets[i] = new BucketSpec(size, burst, refill);
                } catch (IllegalArgumentException e) {
                    throw r.fail(owner + "'s " + names[i] + " bucket: " + e.getMessage());
                }
            }
        }
        return new RateLimit(buckets[0], buckets[1]);
    }

    private static final VmRules.Wording SNAPSHOT_WORDING = new VmRules.Wording("the snapshot's vCPU count",
            "the snapshot's memory size", "the snapshot's command line", "the snapshot's drive id", "the snapshot's network interface id",
            "the snapshot's devices");

    /** {@code text}, a saved path, as a path: one that cannot be (a NUL character) makes the snapshot malformed. */
    private static Path path(StateReader r, String text, String what) {
        try {
            return Path.of(text);
        } catch (InvalidPathException e) {
            throw r.fail(what + " '" + text.replace('\0', '?') + "' is not a path: " + e.getReason());
        }
    }

    /** The constant of {@code values} named {@code name}; a snapshot that names another is malformed ({@code what} names the field). */
    private static <E extends Enum<E>> E named(StateReader r, E[] values, String name, String what) {
        return Arrays.stream(values).filter(v -> v.name().equals(name)).findFirst()
                .orElseThrow(() -> r.fail(what + " '" + name + "' is not one of " + List.of(values)));
    }

    static MachineConfig readMachine(StateReader r, Map<String, String> tapOverrides) {
        int kind = r.u8("snapshot kind");
        if (kind >= Kind.values().length) {
            throw r.fail("the snapshot kind is " + kind + ", neither 0 (full) nor 1 (diff)");
        }
        Path kernel = path(r, r.string(MAX_PATH, "kernel path"), "kernel path");
        String initrd = r.string(MAX_PATH, "initrd path");
        Path initrdPath = initrd.isEmpty() ? null : path(r, initrd, "initrd path");
        String commandLine = r.string(64 * 1024, "command line");
        int cpus = r.i32("vCPU count");
        long memoryMib = r.i64("memory size");
        String protocol = r.string(16, "boot protocol");
        List<DriveConfig> drives = new ArrayList<>();
        for (int i = 0, n = r.count(MAX_DRIVES, "drive"); i < n; i++) {
            String id = r.string(256, "drive id");
            Path image = path(r, r.string(MAX_PATH, "drive image path"), "drive " + id + " image path");
            drives.add(new DriveConfig(id, image, r.bool("drive read-only"), r.bool("drive root"), r.bool("drive on virtio-mmio"),
                    readLimit(r, "drive " + id)));
        }
        List<NicConfig> nics = new ArrayList<>();
        List<String> unused = new ArrayList<>(tapOverrides.keySet());
        for (int i = 0, n = r.count(MAX_NICS, "network interface"); i < n; i++) {
            String id = r.string(256, "network interface id");
            int host = r.u8("network interface host end");
            if (host > HOST_PASST_SOCKET) {
                throw r.fail("network interface " + id + "'s host end is " + host + ", not 0 (tap), 1 (tap descriptor), 2 (passt)"
                        + " or 3 (passt socket)");
            }
            String hostName = r.string(MAX_PATH, "network interface host end name");
            String mac = r.string(32, "network interface MAC");
            RateLimit rx = readLimit(r, "network interface " + id + " receive");
            RateLimit tx = readLimit(r, "network interface " + id + " transmit");
            String override = tapOverrides.get(id);
            unused.remove(id);
            if (override != null) {
                nics.add(new NicConfig(id, override, -1, null, mac, rx, tx));
            } else if (host == HOST_TAP_FD) {
                throw new ConfigException("network interface " + id, "it was on a tap descriptor the snapshotted process"
                        + " inherited, which a restore cannot reopen; give it a tap by name with a network override");
            } else {
                nics.add(new NicConfig(id, host == HOST_TAP ? hostName : null, -1,
                        host == HOST_PASST_SOCKET ? path(r, hostName, "network interface " + id + " passt socket path") : null, mac, rx, tx));
            }
        }
        if (!unused.isEmpty()) {
            throw new ConfigException("network overrides", "the snapshot has no network interface " + String.join(", ", unused));
        }
        VsockConfig vsock = null;
        if (r.bool("vsock device")) {
            vsock = new VsockConfig(r.i64("vsock guest CID"), path(r, r.string(MAX_PATH, "vsock socket path"), "vsock socket path"));
        }
        EntropyConfig entropy = null;
        if (r.bool("entropy device")) {
            entropy = new EntropyConfig(readLimit(r, "the entropy device"));
        }
        List<ShareConfig> shares = new ArrayList<>();
        for (int i = 0, n = r.count(VmRules.MAX_SHARES, "shared folder"); i < n; i++) {
            Path directory = path(r, r.string(MAX_PATH, "shared folder path"), "shared folder path");
            String tag = r.string(4 * VirtioFs.MAX_TAG_BYTES, "shared folder tag");
            boolean readOnly = r.bool("shared folder read-only");
            String cache = r.string(16, "shared folder cache mode");
            shares.add(new ShareConfig(directory, tag, readOnly, named(r, CacheMode.values(), cache, "shared folder " + tag + "'s cache mode")));
        }
        BalloonConfig balloon = null;
        if (r.bool("balloon")) {
            balloon = new BalloonConfig(r.i64("balloon size"), r.bool("balloon deflate_on_oom"), r.i32("balloon statistics interval"));
        }
        LinuxBoot.Protocol bootProtocol = named(r, LinuxBoot.Protocol.values(), protocol, "the boot protocol");
        MachineConfig config = new MachineConfig(kernel, initrdPath, commandLine, cpus, memoryMib,
                bootProtocol, drives, nics, vsock, shares, CpuPinning.NONE, null, entropy, balloon);
        VmRules.machine(config, SNAPSHOT_WORDING);
        return config;
    }
}
