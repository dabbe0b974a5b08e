package dev.panamax.api;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.devices.LegacyPlatform;
import dev.panamax.devices.pci.PciBus;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.mmio.VirtioMmioDevice;
import dev.panamax.virtio.pci.VirtioPciDevice;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * A Linux virtual machine: built from a kernel, an optional initrd, a command line, vCPUs and
 * memory, with its serial console (COM1) going to an output stream. Thread-safe.
 *
 * <pre>{@code
 * try (VirtualMachine vm = VirtualMachine.builder()
 *         .kernel(Path.of("vmlinux")).initrd(Path.of("initramfs.cpio.gz"))
 *         .commandLine("panamax.run=\"uname -a\"").cpus(2).memoryMib(256)
 *         .console(System.out).build()) {
 *     vm.start();
 *     VmExit exit = vm.awaitExit(Duration.ofSeconds(30)).orElseThrow();
 * }
 * }</pre>
 */
public final class VirtualMachine implements AutoCloseable {
    /** What every guest's command line starts with: the console on COM1, reset through the i8042, no reboot loop after a panic. */
    public static final String BASE_COMMAND_LINE = "console=ttyS0 reboot=k panic=-1 tsc=reliable";
    private static final String PANIC_MARKER = "Kernel panic - not syncing";

    private final Vm vm;
    private final LegacyPlatform platform;
    private final PciBus pci;
    private volatile String panic;

    private VirtualMachine(Builder b) {
        Vm created = Vm.create();
        try {
            StringBuilder commandLine = new StringBuilder(BASE_COMMAND_LINE);
            int mmioDevices = 0;
            for (Disk disk : b.disks) {
                if (disk.transport() == Transport.MMIO) {
                    commandLine.append(' ').append(VirtioMmioDevice.commandLineOption(mmioDevices++));
                }
            }
            if (!b.commandLine.isBlank()) {
                commandLine.append(' ').append(b.commandLine);
            }
            LinuxBoot.prepare(created, new LinuxBoot.Spec(b.kernel, b.initrd, commandLine.toString(), b.cpus, b.memoryMib << 20, b.protocol));
            platform = LegacyPlatform.install(created, b.console);
            pci = PciBus.install(created);
            attachDisks(created, b.disks, b.cpus);
            platform.com1().addLineListener(line -> {
                if (panic == null && line.contains(PANIC_MARKER)) {
                    panic = line.strip();
                }
            });
        } catch (RuntimeException e) {
            created.close();
            throw e;
        }
        this.vm = created;
    }

    /** Opens each disk as a virtio-blk device with one request queue per vCPU, on its transport. */
    private void attachDisks(Vm vm, List<Disk> disks, int queues) {
        int mmioDevices = 0;
        for (Disk disk : disks) {
            VirtioBlk blk;
            try {
                blk = VirtioBlk.open(disk.id(), disk.path(), disk.readOnly(), queues);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot use disk " + disk.path() + ": " + e.getMessage(), e);
            }
            try {
                if (disk.transport() == Transport.PCI) {
                    VirtioPciDevice.attach(vm, pci, blk);
                } else {
                    VirtioMmioDevice.attach(vm, blk, mmioDevices++);
                }
            } catch (RuntimeException e) {
                blk.close();
                throw e;
            }
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Starts the vCPUs: the kernel begins to boot. */
    public void start() {
        vm.start();
    }

    public void pause() {
        vm.pause();
    }

    public void resume() {
        vm.resume();
    }

    /**
     * Asks the guest to shut down, as Ctrl-Alt-Del on its keyboard does (Linux reboots, which ends
     * the VM); returns false when the keyboard buffer is full.
     */
    public boolean shutdown() {
        return platform.i8042().sendCtrlAltDel();
    }

    /** Ends the VM at once, as pulling the power cord would. */
    public void kill() {
        vm.stop();
    }

    /**
     * Waits for the VM to end. A reset that follows a kernel panic on the console is reported as
     * {@link VmExit.Reason#GUEST_CRASH} with the panic message.
     */
    public Optional<VmExit> awaitExit(Duration timeout) {
        return vm.awaitExit(timeout).map(exit -> {
            String p = panic;
            return p != null && exit.reason() == VmExit.Reason.RESET
                    ? new VmExit(VmExit.Reason.GUEST_CRASH, exit.vcpu(), p, exit.registers())
                    : exit;
        });
    }

    /** The time from process start until the guest's /init reported reaching user space, once it has. */
    public Optional<Duration> timeToUserSpace() {
        return platform.bootTimer().timeToUserSpace();
    }

    /** Calls {@code listener} once, when the guest's /init reports reaching user space (through the boot timer port). */
    public void onUserSpace(Consumer<Duration> listener) {
        platform.bootTimer().addListener(listener);
    }

    public Vm.State state() {
        return vm.state();
    }

    /** Types {@code bytes} on the serial console; returns how many fit in its buffer. */
    public int sendConsoleInput(byte[] bytes) {
        return platform.com1().receive(bytes);
    }

    /** Calls {@code listener} with each line the guest writes to its console, on a vCPU thread: keep it quick. */
    public void addConsoleLineListener(Consumer<String> listener) {
        platform.com1().addLineListener(listener);
    }

    @Override
    public void close() {
        vm.close();
    }

    /** How a virtio device reaches the guest. */
    public enum Transport {
        /** A PCI function with MSI-X (the default). */
        PCI,
        /** A virtio-mmio window announced on the kernel command line. */
        MMIO
    }

    /**
     * A disk image (raw, qcow2 or vhd) the guest sees as a virtio-blk device: /dev/vda, /dev/vdb, ...
     * in the order added. The image is locked while the VM has it open.
     *
     * @param id the drive's ID, which the guest reads as its serial (/sys/block/vdX/serial); up to 20 ASCII characters
     */
    public record Disk(Path path, boolean readOnly, String id, Transport transport) {
        public Disk {
            Objects.requireNonNull(path, "path");
            Objects.requireNonNull(transport, "transport");
            if (id == null || id.isEmpty() || id.length() > 20 || !id.chars().allMatch(c -> c > 0x20 && c < 0x7f)) {
                throw new IllegalArgumentException("a disk ID is 1 to 20 printable ASCII characters without spaces, not '" + id + "'");
            }
        }
    }

    /** Collects the VM's configuration; {@link #build()} validates it and sets the VM up. */
    public static final class Builder {
        private Path kernel;
        private Path initrd;
        private String commandLine = "";
        private int cpus = 1;
        private long memoryMib = 256;
        private OutputStream console = OutputStream.nullOutputStream();
        private LinuxBoot.Protocol protocol = LinuxBoot.Protocol.AUTO;
        private final List<Disk> disks = new ArrayList<>();

        private Builder() {}

        /** Adds a disk; see {@link Disk}. */
        public Builder disk(Disk disk) {
            Objects.requireNonNull(disk, "disk");
            if (disks.stream().anyMatch(d -> d.id().equals(disk.id()))) {
                throw new IllegalArgumentException("two disks have the ID '" + disk.id() + "'");
            }
            if (disk.transport() == Transport.MMIO && disks.stream().filter(d -> d.transport() == Transport.MMIO).count() == VirtioMmioDevice.MAX_DEVICES) {
                throw new IllegalArgumentException("a VM has at most " + VirtioMmioDevice.MAX_DEVICES + " virtio-mmio devices");
            }
            disks.add(disk);
            return this;
        }

        /** Adds a disk on PCI. */
        public Builder disk(Path path, boolean readOnly, String id) {
            return disk(new Disk(path, readOnly, id, Transport.PCI));
        }

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

        public Builder cpus(int cpus) {
            this.cpus = cpus;
            return this;
        }

        public Builder memoryMib(long memoryMib) {
            this.memoryMib = memoryMib;
            return this;
        }

        /** Where the serial console's output goes (not closed by the VM). */
        public Builder console(OutputStream console) {
            this.console = Objects.requireNonNull(console, "console");
            return this;
        }

        public Builder bootProtocol(LinuxBoot.Protocol protocol) {
            this.protocol = Objects.requireNonNull(protocol, "protocol");
            return this;
        }

        /**
         * @throws dev.panamax.boot.BootException when the kernel, initrd, command line, vCPUs or memory are unusable
         * @throws UncheckedIOException when a disk image is missing, damaged or in use by another process
         * @throws dev.panamax.sys.KvmUnavailableException when this host has no usable KVM
         */
        public VirtualMachine build() {
            if (kernel == null) {
                throw new IllegalStateException("a VM needs a kernel");
            }
            return new VirtualMachine(this);
        }
    }
}
