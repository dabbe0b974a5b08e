package dev.panamax.vmm;

import dev.panamax.boot.GuestCpuid;
import dev.panamax.kvm.CpuidEntry;
import dev.panamax.kvm.Kvm;
import dev.panamax.kvm.KvmUnavailableException;
import dev.panamax.kvm.VcpuFd;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.image.Images;
import dev.panamax.sys.MappedMemory;
import dev.panamax.sys.NativeCallException;
import dev.panamax.virtio.net.VirtioNet;
import dev.panamax.vm.DirtyPages;
import dev.panamax.vm.MemoryMap;
import dev.panamax.vm.state.StateFile;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * The receiving side of a live migration: checks what the source proposes before the source
 * stops its guest (protocol version, configuration, disks at the same paths, vCPU count, memory,
 * CPU features) and builds the VM then, all but the drives' images and the network interfaces'
 * host ends ({@link VmBuilder#buildForMigration}); fills its memory with the pages that arrive;
 * and opens those (disks locked, network opened) only once the source has stopped its guest and
 * let go of its disks, so that the guest's stop holds no more than that and the restore. The
 * guest starts here only on the source's commit; any failure before it leaves nothing behind
 * here, and the source's guest runs on.
 */
public final class MigrationDestination {
    private MigrationDestination() {}

    /**
     * @param tapOverrides for a network interface id, the host tap device to use instead of the source's
     * @param timeout the longest the source may stay silent within a migration
     * @param stayPaused leave the guest paused here even if it ran at the source (QEMU's {@code -S})
     * @param whenBuilt run once the VM is built here (everything it uses opened) and before this side
     *     acknowledges it, so before the guest runs here; what it throws fails the migration, and the
     *     guest runs on at the source
     */
    public record Options(Map<String, String> tapOverrides, Duration timeout, boolean stayPaused, Runnable whenBuilt) {
        public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(60);

        public Options {
            tapOverrides = Map.copyOf(tapOverrides);
            Objects.requireNonNull(timeout, "timeout");
            Objects.requireNonNull(whenBuilt, "whenBuilt");
        }

        public static Options defaults() {
            return new Options(Map.of(), DEFAULT_TIMEOUT, false, () -> {});
        }

        public Options withStayPaused(boolean paused) {
            return new Options(tapOverrides, timeout, paused, whenBuilt);
        }
    }

    private static final long PAGE = DirtyPages.PAGE_SIZE;
    private static final int RUN_HEADER = 16;

    /**
     * Waits on {@code server} for a source, takes its VM and returns it, running if the source's
     * ran (else paused). The server is not closed.
     *
     * @param log told of each step, one line each
     * @throws MigrationException when the migration failed; nothing of it is left here
     * @throws IOException when no source could be accepted
     */
    public static VmBuilder.Machine receive(ServerSocketChannel server, Options options, OutputStream console, Consumer<String> log)
            throws IOException {
        SocketChannel channel = server.accept();
        log.accept("a source connected" + remote(channel));
        try (MigrationWire wire = new MigrationWire(channel, "the source")) {
            return receive(wire, options, console, log);
        }
    }

    private static String remote(SocketChannel channel) {
        try {
            Object address = channel.getRemoteAddress();
            return address == null || address.toString().isEmpty() ? "" : " from " + address;
        } catch (IOException e) {
            return "";
        }
    }

    /**
     * Readies this JVM for a migration while it waits for a source: KVM opened and asked what the
     * checks ask, and a VM with a device of each kind built, saved and restored ({@link
     * MigrationRehearsal#warmUp}). In a cold JVM on a slow CPU (the rig) these take seconds, which
     * would otherwise fall into the migration (and, for what the rehearsal of the real VM misses,
     * into the guest's stop). Best effort: a failure here is met again, and reported, by the
     * migration itself.
     */
    public static void warmUp() {
        try (Kvm kvm = Kvm.open()) {
            kvm.supportedCpuid();
            kvm.msrIndexList();
        } catch (RuntimeException | LinkageError e) {
            return; // the migration meets it again
        }
        MigrationRehearsal.warmUp(line -> LOG.log(System.Logger.Level.DEBUG, "migration: " + line));
    }

    private static final System.Logger LOG = System.getLogger(MigrationDestination.class.getName());

    /**
     * What the source proposed and this side accepted: the configuration, the memory being filled
     * and, once built, the VM it is the memory of; closed unless the VM was taken.
     */
    static final class Incoming implements AutoCloseable {
        MachineConfig config;
        MemoryMap map;
        final List<MappedMemory> memory = new ArrayList<>(); // by map entry; the VM's once it is built
        VmBuilder.Machine machine;

        /** The VM, no longer this object's to close. */
        VmBuilder.Machine take() {
            VmBuilder.Machine taken = machine;
            machine = null;
            memory.clear();
            return taken;
        }

        @Override
        public void close() {
            if (machine != null) {
                machine.vm().close(); // and its memory
            } else {
                for (MappedMemory m : memory) {
                    if (m != null) {
                        m.close();
                    }
                }
            }
        }
    }

    private static VmBuilder.Machine receive(MigrationWire wire, Options options, OutputStream console, Consumer<String> log)
            throws MigrationException {
        Duration timeout = options.timeout();
        try (Incoming incoming = new Incoming()) {
            hello(wire.expect(MigrationWire.Type.HELLO, timeout, "the source's HELLO"), wire);
            MigrationWire.Message config = wire.expect(MigrationWire.Type.CONFIG, timeout, "the source's configuration");
            try {
                accept(config, options, incoming);
            } catch (MigrationException | StateFormatException | ConfigException e) {
                throw new MigrationException("the destination refuses this VM: " + e.getMessage(), e);
            }
            MigrationRehearsal.saveAndRestore(incoming.config, incoming.map, log);
            build(incoming, console, log);
            wire.send(MigrationWire.Type.ACK, new byte[0]);
            log.accept("receiving a VM with " + incoming.config.cpus() + " vCPUs and " + incoming.config.memoryMib() + " MiB");
            while (true) {
                MigrationWire.Message m = wire.receive(timeout, "memory or the VM's state");
                switch (m.type()) {
                    case MEMORY -> applyPages(m.payload(), incoming);
                    case ROUND_END -> {
                        int round = m.payload().getInt();
                        long pages = m.payload().getLong();
                        log.accept("round " + round + ": " + pages + " pages");
                        wire.send(MigrationWire.Type.ACK, new byte[0]);
                    }
                    case STATE -> {
                        takeOver(m, incoming, wire, options.whenBuilt(), log);
                        return commit(wire, incoming.take(), options, log);
                    }
                    case CANCEL -> throw new MigrationException("the source cancelled the migration: " + MigrationWire.text(m));
                    default -> throw new MigrationException("the source sent " + m.type() + " during the memory copy; the protocol is broken");
                }
            }
        } catch (MigrationException e) {
            wire.sendErrorQuietly(MigrationWire.Type.ERROR, e.getMessage());
            throw e;
        } catch (RuntimeException e) {
            String message = "the destination failed: " + (e.getMessage() == null ? e.toString() : e.getMessage());
            wire.sendErrorQuietly(MigrationWire.Type.ERROR, message);
            throw new MigrationException(message, e);
        }
    }

    private static void hello(MigrationWire.Message m, MigrationWire wire) throws MigrationException {
        StateReader r = new StateReader(m.bytes(), "the source's HELLO");
        int version = r.i32("protocol version");
        if (version != MigrationWire.VERSION) {
            String why = "the source speaks migration protocol version " + Integer.toUnsignedString(version) + ", and this destination "
                    + MigrationWire.VERSION + ": run the same Panamax version on both hosts";
            throw new MigrationException(why);
        }
        // Checked here, before any memory moves, rather than when the state comes at the end.
        int stateVersion = r.i32("state format version");
        if (stateVersion != StateFile.VERSION) {
            throw new MigrationException("the source writes VM state format version " + Integer.toUnsignedString(stateVersion)
                    + ", and this destination reads " + StateFile.VERSION + ": run the same Panamax version on both hosts");
        }
        r.string(64, "software name");
        r.end();
        wire.send(MigrationWire.Type.ACK, new byte[0]);
    }

    /** Checks the source's configuration against this host and allocates the guest memory. */
    private static void accept(MigrationWire.Message m, Options options, Incoming incoming) throws MigrationException {
        StateReader r = new StateReader(m.bytes(), "the source's configuration");
        StateReader machine = r.section("machine");
        MachineConfig config = VmSnapshot.readMachine(machine, options.tapOverrides());
        if (!machine.string(16, "disk snapshot name").isEmpty()) {
            throw machine.fail("a migration carries no disk snapshot");
        }
        machine.end();
        StateReader memory = r.section("memory");
        MemoryMap map = MemoryMap.readState(memory, VmSnapshot.ramLayout(config), Long.MAX_VALUE);
        memory.end();
        StateReader cpuidSection = r.section("cpuid");
        List<CpuidEntry> cpuid = new ArrayList<>();
        for (int i = 0, n = cpuidSection.count(VcpuFd.MAX_CPUID_ENTRIES, "CPUID entry"); i < n; i++) {
            cpuid.add(new CpuidEntry(cpuidSection.i32("CPUID function"), cpuidSection.i32("CPUID index"), cpuidSection.i32("CPUID flags"),
                    cpuidSection.i32("CPUID eax"), cpuidSection.i32("CPUID ebx"), cpuidSection.i32("CPUID ecx"), cpuidSection.i32("CPUID edx")));
        }
        cpuidSection.end();
        r.end();
        checkHost(config, cpuid);
        checkDisks(config);
        incoming.config = config;
        incoming.map = map;
        for (MemoryMap.Entry e : map.entries()) {
            try {
                incoming.memory.add(MappedMemory.anonymous(e.size()));
            } catch (NativeCallException ex) {
                throw new MigrationException("cannot allocate " + (map.memorySize() >> 20) + " MiB of guest memory here: " + ex.getMessage(), ex);
            }
        }
    }

    /** The vCPU count and the guest's CPU features against this host's KVM. */
    private static void checkHost(MachineConfig config, List<CpuidEntry> cpuid) throws MigrationException {
        try (Kvm kvm = Kvm.open()) {
            int maxVcpus = kvm.checkExtension(Kvm.Capability.MAX_VCPUS);
            if (maxVcpus > 0 && config.cpus() > maxVcpus) {
                throw new MigrationException("the VM has " + config.cpus() + " vCPUs, and KVM here runs at most " + maxVcpus);
            }
            List<String> missing = GuestCpuid.missingFeatures(cpuid, kvm.supportedCpuid());
            if (!missing.isEmpty()) {
                throw new MigrationException("the guest uses CPU features that KVM here lacks (" + String.join(", ", missing)
                        + "): it would fail on this host");
            }
        } catch (KvmUnavailableException | NativeCallException e) {
            throw new MigrationException("KVM is not usable here: " + e.getMessage(), e);
        }
    }

    /**
     * Each disk at the path the source uses, in the format it uses: on shared storage the same
     * image. Opened read-only and unlocked: the source still writes it.
     */
    private static void checkDisks(MachineConfig config) throws MigrationException {
        for (DriveConfig drive : config.drives()) {
            try (BlockBackend image = Images.open(drive.image(), Images.OpenOptions.readOnly().withFormat(drive.format()))) {
                image.size(); // opened and readable
            } catch (IOException | RuntimeException e) {
                throw new MigrationException("drive " + drive.id() + " is not reachable here at " + drive.image() + " (" + e.getMessage()
                        + "): a migration needs the disks on storage both hosts share, at the same paths");
            }
        }
    }

    /** Copies one MEMORY message's runs into the guest memory, each run checked to lie inside one region. */
    static void applyPages(ByteBuffer payload, Incoming incoming) throws MigrationException {
        List<MemoryMap.Entry> entries = incoming.map.entries();
        MemorySegment bytes = MemorySegment.ofBuffer(payload);
        while (payload.hasRemaining()) {
            if (payload.remaining() < RUN_HEADER) {
                throw new MigrationException("a MEMORY message ends inside a run's header");
            }
            long address = payload.getLong();
            long pages = Integer.toUnsignedLong(payload.getInt());
            int kind = payload.getInt();
            if (address % PAGE != 0 || pages == 0 || (kind != 0 && kind != 1)) {
                throw new MigrationException(String.format("a MEMORY message has a malformed run: address 0x%x, %d pages, kind %d",
                        address, pages, kind));
            }
            long length = pages * PAGE;
            int region = -1;
            for (int i = 0; i < entries.size(); i++) {
                MemoryMap.Entry e = entries.get(i);
                if (address >= e.guestAddress() && address - e.guestAddress() <= e.size() - length) {
                    region = i;
                    break;
                }
            }
            if (region < 0) {
                throw new MigrationException(String.format("a MEMORY message has pages at [0x%x, +0x%x), outside the guest's memory",
                        address, length));
            }
            MemorySegment target = incoming.memory.get(region).segment()
                    .asSlice(address - entries.get(region).guestAddress(), length);
            if (kind == 1) {
                target.fill((byte) 0);
            } else {
                if (payload.remaining() < length) {
                    throw new MigrationException("a MEMORY message's run of " + pages + " pages has only " + payload.remaining() + " bytes");
                }
                MemorySegment.copy(bytes, payload.position(), target, 0, length);
                payload.position(payload.position() + (int) length);
            }
        }
    }

    /**
     * The VM, built while the source's guest runs, on the memory being filled: everything but the
     * drives' images and the network interfaces' host ends, which the source holds; its vCPU
     * threads started and parked (starting them costs tens of milliseconds in the rig).
     */
    private static void build(Incoming incoming, OutputStream console, Consumer<String> log) throws MigrationException {
        long start = System.nanoTime();
        List<MappedMemory> memory = List.copyOf(incoming.memory);
        try {
            incoming.machine = VmBuilder.buildForMigration(incoming.config, console, vm -> {
                for (int i = 0; i < memory.size(); i++) {
                    incoming.memory.set(i, null); // the VM owns it from here, also when adding it fails
                    vm.addMemory(incoming.map.entries().get(i).guestAddress(), memory.get(i));
                }
            });
        } catch (ConfigException | DeviceSetupException | KvmUnavailableException | NativeCallException e) {
            throw new MigrationException("cannot build the VM here: " + e.getMessage(), e);
        }
        incoming.memory.clear();
        incoming.memory.addAll(memory); // where the pages go; closed with the VM
        incoming.machine.vm().startPaused();
        log.accept("built the VM in " + (System.nanoTime() - start) / 1_000_000 + " ms");
    }

    /**
     * Now that the source has stopped its guest and let go of its disks: the disks opened and
     * locked, the network opened, every state restored, paused. Answers the STATE message.
     */
    private static void takeOver(MigrationWire.Message m, Incoming incoming, MigrationWire wire, Runnable whenBuilt,
            Consumer<String> log) throws MigrationException {
        long start = System.nanoTime();
        VmBuilder.Machine machine = incoming.machine;
        try {
            VmBuilder.openLateBackends(machine);
        } catch (DeviceSetupException e) {
            throw new MigrationException("cannot open the VM's disks or network here: " + e.getMessage(), e);
        }
        long opened = System.nanoTime();
        try {
            StateReader in = new StateReader(m.bytes(), "the source's VM state");
            VmSnapshot.restoreStates(in, machine);
            in.end();
        } catch (StateFormatException e) {
            throw new MigrationException("the source's VM state does not fit here: " + e.getMessage(), e);
        }
        whenBuilt.run();
        wire.send(MigrationWire.Type.ACK, new byte[0]);
        log.accept("opened the disks and network in " + (opened - start) / 1_000_000 + " ms and restored the VM's state in "
                + (System.nanoTime() - opened) / 1_000_000 + " ms");
    }

    /** Waits for the commit; on it the guest runs here (if it ran there) and the source is told. */
    private static VmBuilder.Machine commit(MigrationWire wire, VmBuilder.Machine machine, Options options, Consumer<String> log)
            throws MigrationException {
        try {
            MigrationWire.Message go = wire.receive(options.timeout(), "the source's commit");
            if (go.type() == MigrationWire.Type.CANCEL) {
                throw new MigrationException("the source cancelled the migration: " + MigrationWire.text(go));
            }
            if (go.type() != MigrationWire.Type.GO || go.payload().remaining() != 1) {
                throw new MigrationException("the source sent " + go.type() + " where its commit (GO) was expected");
            }
            for (dev.panamax.virtio.VirtioDevice device : machine.devices().virtioDevices()) {
                if (device instanceof VirtioNet nic) {
                    nic.announce(); // before the guest runs: no frame of its own can be under way
                }
            }
            if (go.payload().get() == 1 && !options.stayPaused()) {
                machine.vm().resume();
            }
        } catch (MigrationException | RuntimeException e) {
            machine.vm().close();
            throw e;
        }
        log.accept(machine.vm().state() == dev.panamax.vm.Vm.State.RUNNING ? "the VM runs here" : "the VM is here, paused");
        try {
            wire.send(MigrationWire.Type.ACK, new byte[0]);
        } catch (MigrationException e) {
            // Committed: the source stays stopped whether or not it hears this.
            log.accept("the source did not take the last answer (" + e.getMessage() + "); it stays stopped");
        }
        return machine;
    }
}
