package dev.panamax.vmm;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.Images;
import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.ratelimit.RateLimit;
import dev.panamax.vm.MemoryMap;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;

/**
 * Throwaway copies of a migrating VM, built, saved and restored before the guest stops, so that the
 * real save (at the source) and build and restore (at the destination) in the guest's stop run in a
 * warm JVM. Cold, the classes, native links and code paths of these cost seconds (in a loaded rig
 * 2.7 s to build and 1.8 s to restore at the destination, 0.4 s to save at the source), which would
 * otherwise all fall into the stop.
 *
 * <p>A copy is built as the destination builds its VM ({@link VmBuilder#buildForMigration}): the
 * drives' images and the network interfaces' taps or passt not opened (the source holds them until
 * the hand-over); its vsock socket is in a directory of its own and its memory anonymous and never
 * touched. Best effort: what fails here is met again, and reported, by the migration itself; the
 * log says so.
 */
final class MigrationRehearsal {
    private MigrationRehearsal() {}

    /** At the destination: builds a copy, saves its state and restores that into a second copy. */
    static void saveAndRestore(MachineConfig config, MemoryMap map, Consumer<String> log) {
        rehearse("building and restoring the VM", config, map, log, true);
    }

    /**
     * At a destination still waiting for its source: {@link #saveAndRestore} on a small VM with a
     * device of each kind a migration carries (a raw and a qcow2 drive, a tap NIC, vsock, entropy,
     * a balloon), so that the rehearsal of the real configuration, and the real build after it, find
     * their code warm: cold, in the rig, they took 6-7 s of the migration's total. The drives are
     * made in a temporary directory; nothing is opened but them.
     */
    static void warmUp(Consumer<String> log) {
        Path dir = null;
        try {
            dir = Files.createTempDirectory("panamax-warm-up-");
            Path raw = dir.resolve("disk.raw");
            Images.create(raw, CreateOptions.of(ImageFormat.RAW, 1 << 20));
            Path qcow2 = dir.resolve("disk.qcow2");
            Images.create(qcow2, CreateOptions.of(ImageFormat.QCOW2, 1 << 20));
            MachineConfig config = new MachineConfig(dir.resolve("kernel"), null, "", 1, WARM_UP_MEMORY_MIB, LinuxBoot.Protocol.AUTO,
                    List.of(new DriveConfig("raw", raw, false, false, false), new DriveConfig("qcow2", qcow2, false, false, false)),
                    List.of(new NicConfig("net0", "panamax-warm", -1, null, "52:54:00:00:00:01")), new VsockConfig(3, dir.resolve("vsock")),
                    List.of(), CpuPinning.NONE, null, new EntropyConfig(RateLimit.NONE), new BalloonConfig(1, false, 0));
            saveAndRestore(config, MemoryMap.of(VmSnapshot.ramLayout(config)), log);
        } catch (IOException | RuntimeException e) {
            log.accept("could not warm up for a migration (" + e.getMessage() + ")");
        } finally {
            deleteQuietly(dir);
        }
    }

    private static final long WARM_UP_MEMORY_MIB = 16;

    /** At the source: builds a copy and saves its state. */
    static void save(MachineConfig config, MemoryMap map, Consumer<String> log) {
        rehearse("saving the VM's state", config, map, log, false);
    }

    private static void rehearse(String what, MachineConfig config, MemoryMap map, Consumer<String> log, boolean restore) {
        long start = System.nanoTime();
        Path dir = null;
        try {
            dir = Files.createTempDirectory("panamax-rehearsal-");
            MachineConfig copy = copyOf(config, dir);
            StateWriter state = new StateWriter();
            VmBuilder.Machine first = build(copy, map);
            try {
                first.vm().startPaused();
                VmSnapshot.saveStates(state, first);
            } finally {
                first.vm().close();
            }
            if (restore) {
                VmBuilder.Machine second = build(copy, map);
                try {
                    StateReader in = new StateReader(state.toByteArray(), "the rehearsal's state");
                    VmSnapshot.restoreStates(in, second);
                    in.end();
                } finally {
                    second.vm().close();
                }
            }
            log.accept("rehearsed " + what + " in " + (System.nanoTime() - start) / 1_000_000 + " ms");
        } catch (IOException | RuntimeException e) {
            log.accept("could not rehearse " + what + " (" + e.getMessage() + "); the guest's stop will be longer");
        } finally {
            deleteQuietly(dir);
        }
    }

    private static MachineConfig copyOf(MachineConfig config, Path dir) {
        VsockConfig vsock = config.vsock() == null ? null : new VsockConfig(config.vsock().guestCid(), dir.resolve("vsock"));
        return new MachineConfig(config.kernel(), config.initrd(), config.commandLine(), config.cpus(), config.memoryMib(),
                config.protocol(), config.drives(), config.nics(), vsock, config.shares(), CpuPinning.NONE, null, config.entropy(),
                config.balloon());
    }

    private static VmBuilder.Machine build(MachineConfig config, MemoryMap map) {
        return VmBuilder.buildForMigration(config, OutputStream.nullOutputStream(), vm -> {
            for (MemoryMap.Entry e : map.entries()) {
                vm.addMemory(e.guestAddress(), MappedMemory.anonymous(e.size()));
            }
        });
    }

    private static void deleteQuietly(Path dir) {
        if (dir == null) {
            return;
        }
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) {
                Files.deleteIfExists(f);
            }
            Files.deleteIfExists(dir);
        } catch (IOException ignored) {
            // a temporary directory left behind
        }
    }
}
