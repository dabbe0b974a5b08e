package dev.panamax.vmm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.boot.SyntheticKernels;
import dev.panamax.devices.BootTimer;
import dev.panamax.devices.CmosRtc;
import dev.panamax.devices.ConsoleOutput;
import dev.panamax.devices.I8042;
import dev.panamax.devices.PostCodePort;
import dev.panamax.devices.PvPanic;
import dev.panamax.devices.Uart16550;
import dev.panamax.devices.pci.PciBus;
import dev.panamax.rig.UsesKvm;
import dev.panamax.virtio.mmio.VirtioMmioDevice;
import dev.panamax.virtio.pci.VirtioPciDevice;
import dev.panamax.virtio.ratelimit.RateLimit;
import dev.panamax.virtio.rng.VirtioRng;
import dev.panamax.vm.AddressBus;
import dev.panamax.vm.MmioDevice;
import dev.panamax.vm.PortIoDevice;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import java.io.ByteArrayOutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The device manager on this host's /dev/kvm (it builds VMs; no guest runs). */
@UsesKvm
class DeviceManagerTest {
    @TempDir Path dir;
    private final ByteArrayOutputStream console = new ByteArrayOutputStream();
    private Vm vm;

    @BeforeEach
    void createVm() {
        vm = Vm.create();
    }

    @AfterEach
    void close() {
        vm.close();
    }

    private DeviceManager legacyOnly() {
        vm.fd().createIrqchip();
        DeviceManager devices = new DeviceManager(vm);
        devices.addLegacyDevices(console);
        return devices;
    }

    /** A guest IN, routed as the vCPU exit handler routes it. */
    private int in(int port) {
        AddressBus.Mapping<PortIoDevice> m = vm.ports().find(port);
        assertThat(m).as("device at port 0x%x", port).isNotNull();
        return m.device().in((int) (port - m.base()), 1);
    }

    private void out(int port, int value) {
        AddressBus.Mapping<PortIoDevice> m = vm.ports().find(port);
        assertThat(m).as("device at port 0x%x", port).isNotNull();
        m.device().out((int) (port - m.base()), 1, value);
    }

    @Test
    void legacyDevicesSitAtTheirStandardPorts() {
        DeviceManager devices = legacyOnly();
        for (char c : "ok\n".toCharArray()) {
            out(0x3F8, c);
        }
        assertThat(console.toString(StandardCharsets.US_ASCII)).isEqualTo("ok\n");
        assertThat(devices.console().bytesWritten()).isEqualTo(3);
        assertThat(in(0x3FD) & 0x60).isEqualTo(0x60);

        out(0x64, 0xAA);
        assertThat(in(0x64) & 0x01).isEqualTo(1);
        assertThat(in(0x60)).isEqualTo(0x55);

        out(0x70, 0x0D);
        assertThat(in(0x71)).isEqualTo(0x80);

        out(0x80, 0x42);
        assertThat(((PostCodePort) devices.device("post-code").device()).lastCode()).isEqualTo(0x42);
        out(0x440, BootTimer.MAGIC);
        assertThat(devices.bootTimer().timeToUserSpace()).isPresent();

        assertThat(vm.ports().find(0x61)).as("PIT speaker port left to KVM").isNull();
        assertThat(vm.ports().find(0x40)).isNull();
        assertThat(vm.ports().find(0x20)).isNull();
        assertThat(vm.ports().find(0xCF8)).as("no PCI bus unless added").isNull();
    }

    @Test
    void theKeyboardControllerResetEndsTheVm() {
        legacyOnly();
        out(0x64, 0xFE);
        assertThat(vm.awaitExit(Duration.ZERO)).hasValueSatisfying(exit -> assertThat(exit.reason()).isEqualTo(VmExit.Reason.RESET));
    }

    @Test
    void addingTheLegacyDevicesOrTheBusTwiceIsRefused() {
        DeviceManager devices = legacyOnly();
        assertThatThrownBy(() -> devices.addLegacyDevices(null)).isInstanceOf(IllegalStateException.class);
        devices.addPciBus();
        assertThatThrownBy(devices::addPciBus).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> new DeviceManager(vm).addLegacyDevices(null)).as("the ports are taken")
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("COM1");
    }

    @Test
    void virtioMmioWindowsAndIrqsFollowTheLayout() {
        assertThat(DeviceManager.mmioCommandLineOption(0)).isEqualTo("virtio_mmio.device=4K@0xd0000000:5");
        assertThat(DeviceManager.mmioCommandLineOption(1)).isEqualTo("virtio_mmio.device=4K@0xd0001000:6");
        assertThat(DeviceManager.mmioCommandLineOption(7)).isEqualTo("virtio_mmio.device=4K@0xd0007000:15");
        assertThatThrownBy(() -> DeviceManager.mmioIrq(DeviceManager.MAX_MMIO_DEVICES)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void everyDeviceIsListedInTheDocumentedOrderWithAStableId() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        Path data = Files.write(dir.resolve("data.img"), new byte[4096]);
        Path root = Files.write(dir.resolve("root.img"), new byte[4096]);
        Path logs = Files.write(dir.resolve("logs.img"), new byte[4096]);
        Path passt = dir.resolve("passt.sock");
        try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            listener.bind(UnixDomainSocketAddress.of(passt));
            MachineConfig config = new MachineConfig(kernel, null, "quiet", 2, 64, LinuxBoot.Protocol.AUTO,
                    List.of(new DriveConfig("data", data, false, false, false), new DriveConfig("logs", logs, true, false, true),
                            new DriveConfig("rootfs", root, false, true, true)),
                    List.of(new NicConfig("eth0", null, -1, passt, "06:00:ac:10:00:02")), null, List.of(), CpuPinning.NONE, null,
                    new EntropyConfig(RateLimit.NONE), null);
            VmBuilder.Machine machine = VmBuilder.build(config, console);
            try {
                List<DeviceManager.Device> devices = machine.devices().devices();
                assertThat(devices).extracting(DeviceManager.Device::id).containsExactly(
                        "serial0", "i8042", "rtc", "boot-timer", "post-code", "pci/00:00.0/host-bridge",
                        "mmio/d0000000/virtio-blk/rootfs", "mmio/d0001000/virtio-blk/logs",
                        "pci/00:01.0/virtio-blk/data", "pci/00:02.0/virtio-net/eth0", "pci/00:03.0/virtio-rng/entropy",
                        "pci/00:04.0/pvpanic");
                assertThat(devices).<Class<?>>extracting(d -> d.device().getClass()).containsExactly(
                        Uart16550.class, I8042.class, CmosRtc.class, BootTimer.class, PostCodePort.class,
                        PciBus.class, VirtioMmioDevice.class, VirtioMmioDevice.class, VirtioPciDevice.class, VirtioPciDevice.class,
                        VirtioPciDevice.class, PvPanic.class);
                assertThat(devices.get(0).resources()).isEqualTo("ports 0x3f8-0x3ff, IRQ 4");
                assertThat(devices.get(6).resources()).isEqualTo("MMIO 0xd0000000-0xd0000fff, IRQ 5");
                assertThat(devices.get(8).resources()).isEqualTo("PCI 00:01.0, BAR 0 at 0xc0000000, MSI-X 3 vectors");
                assertThat(devices.get(9).resources()).isEqualTo("PCI 00:02.0, BAR 0 at 0xc0008000, MSI-X 4 vectors");
                assertThat(devices.get(10).resources()).isEqualTo("PCI 00:03.0, BAR 0 at 0xc0010000, MSI-X 2 vectors");
                assertThat(((VirtioPciDevice) devices.get(10).device()).device()).isInstanceOf(VirtioRng.class);
                assertThat(devices.get(11).resources()).isEqualTo("PCI 00:04.0, BAR 0 at 0xc0018000");
                assertThat(machine.devices().pvPanic()).isSameAs(devices.get(11).device());
                assertThat(machine.vm().mmio().find(0xd000_1000L).device()).isSameAs(devices.get(7).device());
                assertThat(machine.devices().console()).isInstanceOf(ConsoleOutput.class);
                String map = Files.readString(Path.of("../docs/devices.md"));
                for (DeviceManager.Device d : devices) {
                    assertThat(map).as("docs/devices.md on " + d.id()).contains("[`" + d.device().getClass().getSimpleName() + "`]")
                            .contains("`" + d.id().replaceAll("^mmio/[0-9a-f]+/", "mmio/BASE/").replaceAll("^pci/00:0[1-9a-f]\\.0/", "pci/00:SS.0/")
                                    .replaceAll("/(rootfs|logs|data|eth0)$", "/ID") + "`");
                }
            } finally {
                machine.vm().close();
            }
        }
    }

    @Test
    void aPanicTheGuestWritesToPvpanicEndsTheVmWithItsOwnReason() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        VmBuilder.Machine machine = VmBuilder.build(new MachineConfig(kernel, null, "", 1, 64, LinuxBoot.Protocol.AUTO, List.of(), List.of()),
                console);
        try {
            PvPanic pvpanic = machine.devices().pvPanic();
            MmioDevice register = machine.vm().mmio().find(pvpanic.config().barAddress(0)).device();
            assertThat(register.read(0, 1)).as("the events the driver may send").isEqualTo(PvPanic.PANICKED | PvPanic.CRASH_LOADED);
            register.write(0, 1, PvPanic.CRASH_LOADED); // a crash kernel takes over: the VM goes on
            assertThat(machine.vm().exit()).isEmpty();
            register.write(0, 1, PvPanic.PANICKED);
            assertThat(machine.vm().awaitExit(Duration.ZERO)).hasValueSatisfying(exit -> {
                assertThat(exit.reason()).isEqualTo(VmExit.Reason.GUEST_PANIC);
                assertThat(exit.reason().clean()).isFalse();
                assertThat(exit.toString()).isEqualTo("guest panic: " + DeviceManager.PVPANIC_EXIT);
            });
        } finally {
            machine.vm().close();
        }
    }

    @Test
    void theCommandLineAnnouncesTheMmioWindowsAndTheRootDriveBeforeTheCallersPart() {
        MachineConfig config = new MachineConfig(Path.of("vmlinux"), null, "quiet", 1, 64, LinuxBoot.Protocol.AUTO,
                List.of(new DriveConfig("data", Path.of("a"), false, false, true), new DriveConfig("rootfs", Path.of("b"), true, true, true)),
                List.of());
        assertThat(VmBuilder.commandLine(config)).isEqualTo(VmBuilder.BASE_COMMAND_LINE
                + " virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6 root=/dev/vda ro quiet");
        assertThat(VmBuilder.inGuestOrder(config.drives())).extracting(DriveConfig::id).containsExactly("rootfs", "data");
    }
}
