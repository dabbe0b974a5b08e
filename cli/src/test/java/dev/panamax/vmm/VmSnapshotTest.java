package dev.panamax.vmm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.boot.SyntheticKernels;
import dev.panamax.rig.UsesKvm;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.qcow2.Qcow2Image;
import dev.panamax.virtio.balloon.VirtioBalloon;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.fs.CacheMode;
import dev.panamax.virtio.fs.VirtioFs;
import dev.panamax.virtio.net.VirtioNet;
import dev.panamax.virtio.pci.VirtioPciDevice;
import dev.panamax.virtio.ratelimit.BucketSpec;
import dev.panamax.virtio.ratelimit.RateLimit;
import dev.panamax.vm.AddressBus;
import dev.panamax.vm.PortIoDevice;
import dev.panamax.vm.Vm;
import dev.panamax.vm.state.StateFile;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Whole-VM snapshots on this host's /dev/kvm, where no Linux runs: a VM built for a (synthetic)
 * kernel and started paused is saved, restored in a new VM with the same devices and states, and
 * every kind of damaged or foreign snapshot is refused with its own sentence before a VM starts.
 */
@UsesKvm
class VmSnapshotTest {
    @TempDir Path dir;
    private final ByteArrayOutputStream console = new ByteArrayOutputStream();
    private Path state;
    private Path memory;
    private MachineConfig config;

    private ServerSocketChannel passt;

    @AfterEach
    void closePasst() throws IOException {
        passt.close();
    }

    @BeforeEach
    void snapshotAVm() throws IOException {
        if (passt == null) {
            // A stand-in for a passt listening on its socket: the NIC connects, no frame moves.
            passt = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            passt.bind(UnixDomainSocketAddress.of(dir.resolve("passt.sock")));
        }
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        Path data = Files.write(dir.resolve("data.img"), new byte[1 << 20]);
        Path logs = Files.write(dir.resolve("logs.img"), new byte[1 << 20]);
        config = new MachineConfig(kernel, null, "quiet", 2, 64, LinuxBoot.Protocol.AUTO,
                List.of(new DriveConfig("data", data, true, false, false), new DriveConfig("logs", logs, true, false, true)),
                List.of(new NicConfig("eth0", null, -1, dir.resolve("passt.sock"), null)), null, List.of(), CpuPinning.NONE, null,
                new EntropyConfig(new RateLimit(new BucketSpec(1000, 0, 100), new BucketSpec(5, 2, 1000))), null);
        state = dir.resolve("vm.state");
        memory = dir.resolve("vm.mem");
        VmBuilder.Machine machine = VmBuilder.build(config, console);
        try {
            machine.vm().startPaused();
            machine.vm().memory().write(0x10_0000, "a page the snapshot keeps".getBytes());
            // Devices away from their reset state, as a guest leaves them: the UART's scratch
            // register, and memory decoding on the virtio-pci disk (00:01.0).
            out(machine.vm(), 0x3ff, 1, 0x5a);
            out(machine.vm(), 0xcf8, 4, 0x8000_0804);
            out(machine.vm(), 0xcfc, 2, 0x0006);
            VmSnapshot.create(machine, new VmSnapshot.Create(state, memory, VmSnapshot.Kind.FULL));
        } finally {
            machine.vm().close();
        }
    }

    private static void out(Vm vm, int port, int size, int value) {
        AddressBus.Mapping<PortIoDevice> m = vm.ports().find(port);
        m.device().out((int) (port - m.base()), size, value);
    }

    private static int in(Vm vm, int port, int size) {
        AddressBus.Mapping<PortIoDevice> m = vm.ports().find(port);
        return m.device().in((int) (port - m.base()), size);
    }

    private VmBuilder.Machine restore() throws IOException {
        return VmSnapshot.restore(new VmSnapshot.Restore(state, memory, false, Map.of()), console);
    }

    @Test
    void aRestoredVmHasTheSameDevicesStatesAndMemoryAndStaysPaused() throws IOException {
        VmBuilder.Machine restored = restore();
        try {
            assertThat(restored.vm().state()).isEqualTo(Vm.State.PAUSED);
            assertThat(restored.config()).usingRecursiveComparison().ignoringFields("nics").isEqualTo(config);
            assertThat(restored.config().nics().getFirst().guestMac()).as("the random MAC the NIC got, kept")
                    .matches("([0-9a-f]{2}:){5}[0-9a-f]{2}");
            assertThat(restored.devices().devices()).extracting(DeviceManager.Device::id).containsExactly("serial0", "i8042", "rtc",
                    "boot-timer", "post-code", "pci/00:00.0/host-bridge", "mmio/d0000000/virtio-blk/logs", "pci/00:01.0/virtio-blk/data", "pci/00:02.0/virtio-net/eth0",
                    "pci/00:03.0/virtio-rng/entropy", "pci/00:04.0/pvpanic");
            byte[] page = new byte[25];
            restored.vm().memory().read(0x10_0000, page, 0, page.length);
            assertThat(new String(page)).isEqualTo("a page the snapshot keeps");
            assertThat(in(restored.vm(), 0x3ff, 1)).as("the UART's scratch register").isEqualTo(0x5a);
            out(restored.vm(), 0xcf8, 4, 0x8000_0804);
            assertThat(in(restored.vm(), 0xcfc, 2) & 0x2).as("memory decoding in the disk's PCI command register").isEqualTo(0x2);
            Path again = dir.resolve("again.state");
            VmSnapshot.create(restored, new VmSnapshot.Create(again, dir.resolve("again.mem"), VmSnapshot.Kind.FULL));
            assertThat(dir.resolve("again.mem")).hasSameBinaryContentAs(memory);
            assertThat(sections(again)).as("a snapshot of the restored VM").containsEntry("machine", sections(state).get("machine"))
                    .containsEntry("memory", sections(state).get("memory")).containsEntry("devices", sections(state).get("devices"));
        } finally {
            restored.vm().close();
        }
    }

    /** The payload's sections by name, their bodies as text for readable diffs. */
    private static Map<String, String> sections(Path stateFile) throws IOException {
        StateReader in = StateFile.read(stateFile);
        Map<String, String> all = new java.util.LinkedHashMap<>();
        while (in.remaining() > 0) {
            all.put(in.string(256, "name"), java.util.HexFormat.of().formatHex(in.bytes(Integer.MAX_VALUE - 8, "body")));
        }
        return all;
    }

    @Test
    void aDiffSnapshotMergedOntoItsBaseRestoresTheVmAsTheDiffSawIt() throws IOException {
        Path base = dir.resolve("base.mem");
        Path diffState = dir.resolve("diff.state");
        Path diffMemory = dir.resolve("diff.mem");
        VmBuilder.Machine machine = VmBuilder.build(config, console);
        try {
            machine.vm().startDirtyTracking();
            machine.vm().startPaused();
            machine.vm().memory().write(0x20_0000, "in the base".getBytes());
            VmSnapshot.create(machine, new VmSnapshot.Create(dir.resolve("base.state"), base, VmSnapshot.Kind.FULL));
            machine.vm().memory().write(0x30_0000, "in the diff".getBytes());
            out(machine.vm(), 0x3ff, 1, 0x77);
            VmSnapshot.create(machine, new VmSnapshot.Create(diffState, diffMemory, VmSnapshot.Kind.DIFF));
        } finally {
            machine.vm().close();
        }
        assertThat(Files.size(diffMemory)).isEqualTo(Files.size(base));
        try (FileChannel diff = FileChannel.open(diffMemory)) {
            ByteBuffer page = ByteBuffer.allocate(11);
            diff.read(page, 0x20_0000); // RAM from guest address 0 is at file offset 0
            assertThat(page.array()).as("a page written before the base is not in the diff").containsOnly(0);
            diff.read(page.clear(), 0x30_0000);
            assertThat(new String(page.array())).isEqualTo("in the diff");
        }
        assertThatThrownBy(() -> VmSnapshot.mergeMemory(dir.resolve("base.state"), base, diffMemory))
                .isInstanceOf(StateFormatException.class).hasMessageContaining("is a full snapshot");
        VmSnapshot.mergeMemory(diffState, diffMemory, base);
        VmBuilder.Machine restored = VmSnapshot.restore(new VmSnapshot.Restore(diffState, base, false, Map.of()), console);
        try {
            byte[] page = new byte[11];
            restored.vm().memory().read(0x20_0000, page, 0, page.length);
            assertThat(new String(page)).isEqualTo("in the base");
            restored.vm().memory().read(0x30_0000, page, 0, page.length);
            assertThat(new String(page)).isEqualTo("in the diff");
            assertThat(in(restored.vm(), 0x3ff, 1)).as("the UART's scratch register as the diff saved it").isEqualTo(0x77);
        } finally {
            restored.vm().close();
        }
    }

    @Test
    void aSnapshotWithDisksBringsTheQcow2DrivesBackToTheirStateAtTheSnapshot() throws IOException {
        Path disk = dir.resolve("data.qcow2");
        Images.create(disk, CreateOptions.of(ImageFormat.QCOW2, 1 << 20));
        MachineConfig withDisk = new MachineConfig(config.kernel(), null, "", 1, 64, LinuxBoot.Protocol.AUTO,
                List.of(new DriveConfig("data", disk, false, false, false)), List.of());
        VmBuilder.Machine machine = VmBuilder.build(withDisk, console);
        try {
            machine.vm().startPaused();
            VmSnapshot.create(machine, new VmSnapshot.Create(state, memory, VmSnapshot.Kind.FULL, true));
        } finally {
            machine.vm().close();
        }
        writeDisk(disk, "written after the snapshot");
        VmSnapshot.restore(new VmSnapshot.Restore(state, memory, false, Map.of()), console).vm().close();
        assertThat(readDisk(disk, 26)).as("the drive as it was at the snapshot").containsOnly(0);

        writeDisk(disk, "written after the snapshot");
        try (BlockBackend image = Images.open(disk, Images.OpenOptions.readWrite())) {
            ((Qcow2Image) image).deleteSnapshot("panamax:" + state.toAbsolutePath());
        }
        assertThatThrownBy(this::restore).isInstanceOf(StateFormatException.class).hasMessageContaining("drive data")
                .hasMessageContaining("has no qcow2 snapshot");

        VmBuilder.Machine raw = VmBuilder.build(new MachineConfig(config.kernel(), null, "", 1, 64, LinuxBoot.Protocol.AUTO,
                List.of(new DriveConfig("raw", Files.write(dir.resolve("raw.img"), new byte[1 << 20]), false, false, false)), List.of()),
                console);
        try {
            raw.vm().startPaused();
            assertThatThrownBy(() -> VmSnapshot.create(raw, new VmSnapshot.Create(dir.resolve("r.state"), dir.resolve("r.mem"),
                    VmSnapshot.Kind.FULL, true))).hasMessageContaining("drive raw is a raw image");
        } finally {
            raw.vm().close();
        }
    }

    private static void writeDisk(Path disk, String text) throws IOException {
        try (BlockBackend image = Images.open(disk, Images.OpenOptions.readWrite())) {
            image.write(0, ByteBuffer.wrap(text.getBytes()));
            image.flush();
        }
    }

    private static byte[] readDisk(Path disk, int length) throws IOException {
        try (BlockBackend image = Images.open(disk, Images.OpenOptions.readOnly())) {
            ByteBuffer b = ByteBuffer.allocate(length);
            image.read(0, b);
            return b.array();
        }
    }

    @Test
    void aVmWithAVsockIsRestoredWithItsGuestCidAndSocket() throws IOException {
        Path uds = dir.resolve("v.sock");
        MachineConfig withVsock = new MachineConfig(config.kernel(), null, "", 1, 64, LinuxBoot.Protocol.AUTO, List.of(), List.of(),
                new VsockConfig(3, uds));
        Path vsockState = dir.resolve("vsock.state");
        Path vsockMemory = dir.resolve("vsock.mem");
        VmBuilder.Machine machine = VmBuilder.build(withVsock, console);
        try {
            assertThat(Files.exists(uds)).isTrue();
            machine.vm().startPaused();
            VmSnapshot.create(machine, new VmSnapshot.Create(vsockState, vsockMemory, VmSnapshot.Kind.FULL));
        } finally {
            machine.vm().close();
        }
        assertThat(Files.exists(uds)).as("removed with the VM").isFalse();
        VmBuilder.Machine restored = VmSnapshot.restore(new VmSnapshot.Restore(vsockState, vsockMemory, false, Map.of()), console);
        try {
            assertThat(restored.config().vsock()).isEqualTo(new VsockConfig(3, uds.toAbsolutePath()));
            assertThat(restored.devices().devices()).extracting(DeviceManager.Device::id).contains("pci/00:01.0/virtio-vsock/vsock");
            assertThat(Files.exists(uds)).as("the restored device's socket").isTrue();
        } finally {
            restored.vm().close();
        }
    }

    @Test
    void rateLimitsInForceAtThePauseComeBackWithTheRestoredVmAndAHostileBucketIsRefused() throws IOException {
        RateLimit booted = new RateLimit(new BucketSpec(0x00AB_CDEF_0123L, 0, 1000), null);
        RateLimit patched = new RateLimit(new BucketSpec(2 << 20, 1 << 20, 500), new BucketSpec(100, 0, 1000));
        RateLimit rx = new RateLimit(null, new BucketSpec(7, 0, 10));
        RateLimit tx = new RateLimit(new BucketSpec(3 << 20, 0, 250), null);
        MachineConfig limited = new MachineConfig(config.kernel(), null, "", 1, 64, LinuxBoot.Protocol.AUTO,
                List.of(new DriveConfig("data", dir.resolve("data.img"), false, false, false, booted)),
                List.of(new NicConfig("eth0", null, -1, dir.resolve("passt.sock"), null, rx, tx)));
        VmBuilder.Machine machine = VmBuilder.build(limited, console);
        try {
            machine.vm().startPaused();
            VirtioBlk data = (VirtioBlk) machine.devices().virtio("virtio-blk", "data");
            data.rateLimiter().update(patched); // as PATCH /drives/data does while the guest runs
            VmSnapshot.create(machine, new VmSnapshot.Create(state, memory, VmSnapshot.Kind.FULL));
        } finally {
            machine.vm().close();
        }
        VmBuilder.Machine restored = restore();
        try {
            assertThat(restored.config().drives().getFirst().rateLimit()).isEqualTo(patched);
            assertThat(((VirtioBlk) restored.devices().virtio("virtio-blk", "data")).rateLimiter().limit()).isEqualTo(patched);
            VirtioNet eth0 = (VirtioNet) restored.devices().virtio("virtio-net", "eth0");
            assertThat(eth0.receiveLimiter().limit()).isEqualTo(rx);
            assertThat(eth0.transmitLimiter().limit()).isEqualTo(tx);
        } finally {
            restored.vm().close();
        }

        // The same VM snapshotted before the PATCH, its bucket's size then made negative by a hostile writer.
        machine = VmBuilder.build(limited, console);
        try {
            machine.vm().startPaused();
            VmSnapshot.create(machine, new VmSnapshot.Create(state, memory, VmSnapshot.Kind.FULL));
        } finally {
            machine.vm().close();
        }
        byte[] file = Files.readAllBytes(state);
        byte[] payload = Arrays.copyOfRange(file, 20, file.length - 4);
        int at = indexOf(payload, ByteBuffer.allocate(8).putLong(0x00AB_CDEF_0123L).array());
        ByteBuffer.wrap(payload).putLong(at, -5);
        StateFile.write(state, payload);
        assertThatThrownBy(this::restore).isInstanceOf(StateFormatException.class)
                .hasMessageContaining("drive data's bandwidth bucket: token bucket size -5");
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            if (Arrays.equals(haystack, i, i + needle.length, needle, 0, needle.length)) {
                return i;
            }
        }
        throw new AssertionError("not found");
    }

    @Test
    void aVmWithABalloonIsRestoredWithItsOptionsAndTarget() throws IOException {
        MachineConfig withBalloon = new MachineConfig(config.kernel(), null, "", 1, 64, LinuxBoot.Protocol.AUTO, List.of(), List.of(),
                null, List.of(), CpuPinning.NONE, null, null, new BalloonConfig(8, true, 5));
        Path state = dir.resolve("balloon.state");
        Path memory = dir.resolve("balloon.mem");
        VmBuilder.Machine machine = VmBuilder.build(withBalloon, console);
        try {
            ((VirtioBalloon) machine.devices().virtio("virtio-balloon", VmBuilder.BALLOON_ID)).setTargetPages(4096);
            machine.vm().startPaused();
            VmSnapshot.create(machine, new VmSnapshot.Create(state, memory, VmSnapshot.Kind.FULL));
        } finally {
            machine.vm().close();
        }
        VmBuilder.Machine restored = VmSnapshot.restore(new VmSnapshot.Restore(state, memory, false, Map.of()), console);
        try {
            assertThat(restored.config().balloon()).isEqualTo(new BalloonConfig(8, true, 5));
            VirtioBalloon balloon = (VirtioBalloon) restored.devices().virtio("virtio-balloon", VmBuilder.BALLOON_ID);
            assertThat(restored.devices().devices()).extracting(DeviceManager.Device::id).contains("pci/00:01.0/virtio-balloon/balloon");
            assertThat(balloon.targetPages()).as("the target at the snapshot, not the configured one").isEqualTo(4096);
            assertThat(balloon.deflateOnOom()).isTrue();
            assertThat(balloon.statsIntervalSeconds()).isEqualTo(5);
        } finally {
            restored.vm().close();
        }
    }

    @Test
    void aVmWithASharedFolderIsRestoredWithItsVirtioFsDeviceServingTheSameFolder() throws IOException {
        Path shared = Files.createDirectory(dir.resolve("shared"));
        MachineConfig withShare = new MachineConfig(config.kernel(), null, "", 1, 64, LinuxBoot.Protocol.AUTO, List.of(), List.of(),
                null, List.of(new ShareConfig(shared, "data", true, CacheMode.NONE)));
        Path shareState = dir.resolve("share.state");
        Path shareMemory = dir.resolve("share.mem");
        VmBuilder.Machine machine = VmBuilder.build(withShare, console);
        try {
            assertThat(machine.devices().devices()).extracting(DeviceManager.Device::id).contains("pci/00:01.0/virtio-fs/fs0");
            machine.vm().startPaused();
            VmSnapshot.create(machine, new VmSnapshot.Create(shareState, shareMemory, VmSnapshot.Kind.FULL));
        } finally {
            machine.vm().close();
        }
        VmBuilder.Machine restored = VmSnapshot.restore(new VmSnapshot.Restore(shareState, shareMemory, false, Map.of()), console);
        try {
            assertThat(restored.config().shares()).containsExactly(new ShareConfig(shared, "data", true, CacheMode.NONE));
            VirtioFs fs = (VirtioFs) ((VirtioPciDevice) restored.devices().device("pci/00:01.0/virtio-fs/fs0").device()).device();
            assertThat(fs.cache()).as("the share's cache mode").isEqualTo(CacheMode.NONE);
        } finally {
            restored.vm().close();
        }
    }

    @Test
    void aDiffOfAVmThatDoesNotTrackDirtyPagesIsRefused() {
        VmBuilder.Machine machine = VmBuilder.build(config, console);
        try {
            machine.vm().startPaused();
            assertThatThrownBy(() -> VmSnapshot.create(machine, new VmSnapshot.Create(dir.resolve("d.state"), dir.resolve("d.mem"),
                    VmSnapshot.Kind.DIFF))).isInstanceOf(IllegalStateException.class).hasMessageContaining("track_dirty_pages");
        } finally {
            machine.vm().close();
        }
    }

    @Test
    void theMemoryFileNeverChangesAndTwoRestoresAreIndependent() throws IOException {
        byte[] before = Files.readAllBytes(memory);
        VmBuilder.Machine a = restore();
        VmBuilder.Machine b = restore();
        try {
            a.vm().memory().write(0x10_0000, "written by the first".getBytes());
            byte[] page = new byte[25];
            b.vm().memory().read(0x10_0000, page, 0, page.length);
            assertThat(new String(page)).isEqualTo("a page the snapshot keeps");
        } finally {
            a.vm().close();
            b.vm().close();
        }
        assertThat(Files.readAllBytes(memory)).isEqualTo(before);
    }

    @Test
    void aDamagedStateFileIsRefusedWithItsOwnReason() throws IOException {
        byte[] good = Files.readAllBytes(state);
        assertRefused(Arrays.copyOf(good, good.length / 2), "is truncated");
        assertRefused(with(good, b -> b[0] = 'Q'), "is not a Panamax snapshot state file");
        assertRefused(with(good, b -> ByteBuffer.wrap(b).putInt(8, 7)), "is in snapshot format version 7; this Panamax reads version " + StateFile.VERSION + " only");
        assertRefused(with(good, b -> b[good.length - 40] ^= 0x10), "is corrupt: its checksum");
    }

    @Test
    void aSnapshotThatDoesNotFitItsConfigurationIsRefused() throws IOException {
        rewriteMachine(w -> w.cpus = 3);
        assertThatThrownBy(this::restore).isInstanceOf(StateFormatException.class).hasMessageContaining("vCPU").hasMessageContaining("3")
                .hasMessageContaining("2");
        snapshotAVm();
        rewriteMachine(w -> w.memoryMib = 128);
        assertThatThrownBy(this::restore).isInstanceOf(StateFormatException.class).hasMessageContaining("memory");
        snapshotAVm();
        rewriteMachine(w -> w.cpus = 100_000);
        assertThatThrownBy(this::restore).isInstanceOf(ConfigException.class).hasMessageContaining("the snapshot's vCPU count");
    }

    @Test
    void aMemoryFileShorterThanTheMapIsRefused() throws IOException {
        try (FileChannel f = FileChannel.open(memory, StandardOpenOption.WRITE)) {
            f.truncate(f.size() / 2);
        }
        assertThatThrownBy(this::restore).isInstanceOf(StateFormatException.class).hasMessageContaining("of the memory file, which is only");
    }

    @Test
    void aDiskThatIsGoneIsNamed() throws IOException {
        Files.delete(dir.resolve("logs.img"));
        assertThatThrownBy(this::restore).isInstanceOf(ConfigException.class).hasMessageContaining("drive logs");
    }

    private void assertRefused(byte[] stateBytes, String reason) throws IOException {
        Files.write(state, stateBytes);
        assertThatThrownBy(this::restore).isInstanceOf(StateFormatException.class).hasMessageContaining(reason);
    }

    private static byte[] with(byte[] good, java.util.function.Consumer<byte[]> change) {
        byte[] copy = good.clone();
        change.accept(copy);
        return copy;
    }

    /** The machine section's fields that tests change. */
    private static final class Machine {
        int cpus;
        long memoryMib;
    }

    /** Rewrites the state file with its machine section changed, re-checksummed, as a hostile writer would. */
    private void rewriteMachine(java.util.function.Consumer<Machine> change) throws IOException {
        StateReader in = StateFile.read(state);
        StateWriter out = new StateWriter();
        while (in.remaining() > 0) {
            String name = in.string(256, "name");
            byte[] body = in.bytes(Integer.MAX_VALUE - 8, "body");
            if (name.equals("machine")) {
                StateReader m = new StateReader(body, "machine");
                StateWriter w = new StateWriter().u8(m.u8("kind"));
                for (int i = 0; i < 3; i++) {
                    w.bytes(m.bytes(1 << 20, "text"));
                }
                Machine fields = new Machine();
                fields.cpus = m.i32("cpus");
                fields.memoryMib = m.i64("memory");
                change.accept(fields);
                w.i32(fields.cpus).i64(fields.memoryMib);
                byte[] rest = new byte[m.remaining()];
                for (int i = 0; i < rest.length; i++) {
                    rest[i] = (byte) m.u8("rest");
                }
                body = concat(w.toByteArray(), rest);
            }
            out.string(name).bytes(body);
        }
        StateFile.write(state, out.toByteArray());
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] all = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }
}
