package dev.panamax.vmm;

import dev.panamax.devices.BootTimer;
import dev.panamax.devices.CmosRtc;
import dev.panamax.devices.ConsoleOutput;
import dev.panamax.devices.I8042;
import dev.panamax.devices.PostCodePort;
import dev.panamax.devices.PvPanic;
import dev.panamax.devices.Uart16550;
import dev.panamax.devices.pci.PciBus;
import dev.panamax.virtio.QueueNotifier;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.mmio.VirtioMmioDevice;
import dev.panamax.virtio.pci.VirtioPciDevice;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import dev.panamax.x86.PhysicalLayout;
import java.io.OutputStream;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * Every device of one VM: it creates them, places them (ports, MMIO windows, PCI slots), routes
 * their interrupts (ISA lines on the in-kernel PIC and IOAPIC, MSI-X through KVM's GSI routes) and
 * lists them in a fixed order with a stable id, as Firecracker's {@code device_manager} does. The
 * order, which snapshots follow: the legacy devices ({@code serial0}, {@code i8042}, {@code rtc},
 * {@code boot-timer}, {@code post-code}), the PCI host bridge ({@code pci/00:00.0/host-bridge}),
 * the virtio-mmio devices by window ({@code mmio/d0000000/virtio-blk/ID}), then the PCI functions
 * by slot ({@code pci/00:01.0/virtio-blk/ID}, {@code pci/00:02.0/virtio-net/ID}), the pvpanic device
 * last among them ({@code pci/00:03.0/pvpanic}). {@code
 * docs/devices.md} maps each to its class and resources.
 *
 * <p>Devices are added before the VM starts, from one thread; the list may then be read from any.
 */
public final class DeviceManager {
    /**
     * The ISA IRQs of the virtio-mmio devices, one each: those no legacy device takes (the PIT,
     * keyboard, cascade, COM1-2, RTC, PS/2 mouse and FPU keep theirs).
     */
    private static final int[] MMIO_IRQS = {5, 6, 7, 9, 10, 11, 14, 15};

    /** The pvpanic device's id after its PCI address, e.g. {@code pci/00:03.0/pvpanic}. */
    public static final String PVPANIC = "pvpanic";

    /** What the VM's exit says when the guest reported its panic through pvpanic (the console's panic line may follow). */
    public static final String PVPANIC_EXIT = "the guest kernel reported a panic through pvpanic";

    private static final System.Logger LOG = System.getLogger(DeviceManager.class.getName());

    /** How many virtio-mmio devices a VM can have. */
    public static final int MAX_MMIO_DEVICES = MMIO_IRQS.length;

    /**
     * One device of the VM.
     *
     * @param id its stable id, e.g. {@code serial0} or {@code pci/00:01.0/virtio-blk/rootfs}
     * @param resources where the guest finds it: ports, MMIO window, PCI address, interrupts
     * @param device the object that holds its state
     */
    public record Device(String id, String resources, Object device) {
        public Device {
            Objects.requireNonNull(id, "id");
            Objects.requireNonNull(resources, "resources");
            Objects.requireNonNull(device, "device");
        }
    }

    private final Vm vm;
    private final List<Device> legacy = new ArrayList<>();
    private final List<Device> mmio = new ArrayList<>();
    private final List<Device> pci = new ArrayList<>();
    private ConsoleOutput console;
    private Uart16550 serial;
    private I8042 i8042;
    private BootTimer bootTimer;
    private PciBus pciBus;
    private PvPanic pvPanic;

    public DeviceManager(Vm vm) {
        this.vm = Objects.requireNonNull(vm, "vm");
    }

    /** The register window of the {@code index}th virtio-mmio device of a VM. */
    public static long mmioBase(int index) {
        return PhysicalLayout.VIRTIO_MMIO_START + VirtioMmioDevice.SIZE * index;
    }

    /** The ISA IRQ of the {@code index}th virtio-mmio device of a VM. */
    public static int mmioIrq(int index) {
        if (index < 0 || index >= MMIO_IRQS.length) {
            throw new IllegalArgumentException("a VM has at most " + MMIO_IRQS.length + " virtio-mmio devices");
        }
        return MMIO_IRQS[index];
    }

    /** What Linux needs on its command line to find the {@code index}th virtio-mmio device. */
    public static String mmioCommandLineOption(int index) {
        return String.format("virtio_mmio.device=4K@0x%x:%d", mmioBase(index), mmioIrq(index));
    }

    /**
     * The legacy PC devices a Linux guest expects, at their standard ports: COM1 (0x3f8, IRQ 4) with
     * its console pipeline, the i8042 (0x60 and 0x64, IRQ 1), the CMOS RTC (0x70-0x71, no
     * interrupts), the boot timer (0x440) and a POST-code sink (0x80). The PIT and PIC ports are left
     * to KVM's in-kernel devices, which must exist before the guest runs. Console output is flushed
     * when the VM closes.
     *
     * @param consoleStream where the guest's serial output goes, or null to discard it; not closed here
     * @throws IllegalStateException when they were added already
     */
    public void addLegacyDevices(OutputStream consoleStream) {
        if (console != null) {
            throw new IllegalStateException("the legacy devices are there already");
        }
        console = new ConsoleOutput(consoleStream);
        vm.closeOnExit(console::flush);
        serial = new Uart16550(vm.interruptLine(Uart16550.COM1_IRQ), console);
        vm.ports().register(Uart16550.COM1_PORT, Uart16550.PORT_COUNT, serial, "COM1 (16550A UART)");
        legacy.add(new Device("serial0", "ports 0x3f8-0x3ff, IRQ 4", serial));
        i8042 = new I8042(vm.interruptLine(I8042.KEYBOARD_IRQ), vm::requestExit);
        vm.ports().register(I8042.DATA_PORT, 1, i8042.dataPort(), "i8042 data");
        vm.ports().register(I8042.COMMAND_PORT, 1, i8042.commandPort(), "i8042 command/status");
        legacy.add(new Device("i8042", "ports 0x60 and 0x64, IRQ 1", i8042));
        CmosRtc rtc = new CmosRtc();
        vm.ports().register(CmosRtc.PORT, CmosRtc.PORT_COUNT, rtc, "CMOS RTC");
        legacy.add(new Device("rtc", "ports 0x70-0x71", rtc));
        bootTimer = new BootTimer();
        vm.ports().register(BootTimer.PORT, BootTimer.PORT_COUNT, bootTimer, "boot timer");
        legacy.add(new Device("boot-timer", "port 0x440", bootTimer));
        PostCodePort postCodes = new PostCodePort();
        vm.ports().register(PostCodePort.PORT, PostCodePort.PORT_COUNT, postCodes, "POST code port");
        legacy.add(new Device("post-code", "port 0x80", postCodes));
    }

    /**
     * PCI bus 0 behind its host bridge: configuration mechanism #1 at 0xcf8-0xcff, BARs placed in
     * the PCI window of the MMIO hole.
     */
    public void addPciBus() {
        if (pciBus != null) {
            throw new IllegalStateException("the PCI bus is there already");
        }
        pciBus = new PciBus(vm.mmio(), PhysicalLayout.PCI_WINDOW_START, PhysicalLayout.PCI_WINDOW_END);
        vm.ports().register(PciBus.PORT, PciBus.PORT_COUNT, pciBus, "PCI configuration mechanism #1");
        legacy.add(new Device("pci/00:00.0/host-bridge", String.format("ports 0xcf8-0xcff, BARs in 0x%x-0x%x",
                PhysicalLayout.PCI_WINDOW_START, PhysicalLayout.PCI_WINDOW_END - 1), pciBus));
    }

    /**
     * Puts {@code device} on the next virtio-mmio window with its own ISA IRQ, which the guest
     * learns from {@link #mmioCommandLineOption}; the VM closes it. On failure the device is closed.
     *
     * @param kind what it is, for its id: {@code virtio-blk}, {@code virtio-net}
     * @param name the id the user gave it
     */
    public VirtioMmioDevice addVirtioMmio(String kind, String name, VirtioDevice device) {
        try {
            int index = mmio.size();
            long base = mmioBase(index);
            int irq = mmioIrq(index);
            VirtioMmioDevice transport = new VirtioMmioDevice(device, vm.memory(), base, vm.interruptLine(irq), QueueNotifier.of(vm));
            vm.closeOnExit(transport);
            vm.mmio().register(base, VirtioMmioDevice.SIZE, transport, device.name() + " (virtio-mmio)");
            mmio.add(new Device(String.format("mmio/%x/%s/%s", base, kind, name),
                    String.format("MMIO 0x%x-0x%x, IRQ %d", base, base + VirtioMmioDevice.SIZE - 1, irq), transport));
            return transport;
        } catch (RuntimeException e) {
            device.close();
            throw e;
        }
    }

    /**
     * Puts {@code device} on the PCI bus in the next free slot, with the modern virtio-pci transport:
     * one memory BAR, MSI-X with a vector per queue and one for configuration changes. The VM closes
     * it. On failure the device is closed.
     *
     * @param kind what it is, for its id: {@code virtio-blk}, {@code virtio-net}
     * @param name the id the user gave it
     * @throws IllegalStateException when there is no PCI bus yet
     */
    public VirtioPciDevice addVirtioPci(String kind, String name, VirtioDevice device) {
        try {
            if (pciBus == null) {
                throw new IllegalStateException("add the PCI bus before PCI devices");
            }
            VirtioPciDevice transport = new VirtioPciDevice(device, vm.memory(), vm::allocateMsiVector, QueueNotifier.of(vm));
            vm.closeOnExit(transport);
            int slot = pciBus.add(transport);
            long bar = transport.config().barAddress(0);
            pci.add(new Device(String.format("pci/00:%02x.0/%s/%s", slot, kind, name), String.format(
                    "PCI 00:%02x.0, BAR 0 at 0x%x, MSI-X %d vectors", slot, bar, device.queueCount() + 1), transport));
            return transport;
        } catch (RuntimeException e) {
            device.close();
            throw e;
        }
    }

    /**
     * Puts the pvpanic device on the PCI bus in the next free slot: the guest kernel's panic, which
     * it writes there, ends the VM at once ({@link VmExit.Reason#GUEST_PANIC}); a crash handed to a
     * loaded crash kernel is logged and the VM goes on, for that kernel to take over. Added after
     * every other PCI device, so that theirs keep their slots.
     *
     * @throws IllegalStateException when there is no PCI bus yet, or a pvpanic device already
     */
    public PvPanic addPvPanic() {
        if (pciBus == null) {
            throw new IllegalStateException("add the PCI bus before PCI devices");
        }
        if (pvPanic != null) {
            throw new IllegalStateException("the pvpanic device is there already");
        }
        PvPanic device = new PvPanic(event -> {
            if (event == PvPanic.PANICKED) {
                vm.requestExit(new VmExit(VmExit.Reason.GUEST_PANIC, -1, PVPANIC_EXIT, null));
            } else {
                LOG.log(Level.WARNING, "the guest kernel crashed and reported through pvpanic that its crash kernel takes over");
            }
        });
        int slot = pciBus.add(device);
        pci.add(new Device(String.format("pci/00:%02x.0/%s", slot, PVPANIC),
                String.format("PCI 00:%02x.0, BAR 0 at 0x%x", slot, device.config().barAddress(0)), device));
        pvPanic = device;
        return device;
    }

    /** The pvpanic device. */
    public PvPanic pvPanic() {
        if (pvPanic == null) {
            throw new IllegalStateException("the pvpanic device was not added");
        }
        return pvPanic;
    }

    /** Every device, in the order the class comment gives. */
    public List<Device> devices() {
        return Stream.of(legacy, mmio, pci).flatMap(List::stream).toList();
    }

    /** The virtio device of {@code kind} ({@code virtio-blk}, ...) that the user named {@code name}, or null when there is none. */
    public VirtioDevice virtio(String kind, String name) {
        for (Device d : Stream.concat(mmio.stream(), pci.stream()).toList()) {
            if (d.id().endsWith("/" + kind + "/" + name)) {
                return virtioBehind(d);
            }
        }
        return null;
    }

    /** Every virtio device, on either transport, in the device manager's order. */
    public List<VirtioDevice> virtioDevices() {
        return Stream.concat(mmio.stream(), pci.stream()).map(DeviceManager::virtioBehind).filter(Objects::nonNull).toList();
    }

    private static VirtioDevice virtioBehind(Device d) {
        return switch (d.device()) {
            case VirtioPciDevice p -> p.device();
            case VirtioMmioDevice m -> m.device();
            default -> null;
        };
    }

    /** The device with {@code id}. */
    public Device device(String id) {
        return devices().stream().filter(d -> d.id().equals(id)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("the VM has no device " + id));
    }

    /** The serial console's output pipeline; present after {@link #addLegacyDevices}. */
    public ConsoleOutput console() {
        return requireLegacy(console);
    }

    /** COM1. */
    public Uart16550 serial() {
        return requireLegacy(serial);
    }

    public I8042 i8042() {
        return requireLegacy(i8042);
    }

    public BootTimer bootTimer() {
        return requireLegacy(bootTimer);
    }

    private static <T> T requireLegacy(T device) {
        if (device == null) {
            throw new IllegalStateException("the legacy devices were not added");
        }
        return device;
    }
}
