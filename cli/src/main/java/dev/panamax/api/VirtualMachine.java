package dev.panamax.api;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.devices.LegacyPlatform;
import dev.panamax.devices.pci.PciBus;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;
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
            String commandLine = b.commandLine.isBlank() ? BASE_COMMAND_LINE : BASE_COMMAND_LINE + " " + b.commandLine;
            LinuxBoot.prepare(created, new LinuxBoot.Spec(b.kernel, b.initrd, commandLine, b.cpus, b.memoryMib << 20, b.protocol));
            platform = LegacyPlatform.install(created, b.console);
            pci = PciBus.install(created);
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

    /** Collects the VM's configuration; {@link #build()} validates it and sets the VM up. */
    public static final class Builder {
        private Path kernel;
        private Path initrd;
        private String commandLine = "";
        private int cpus = 1;
        private long memoryMib = 256;
        private OutputStream console = OutputStream.nullOutputStream();
        private LinuxBoot.Protocol protocol = LinuxBoot.Protocol.AUTO;

        private Builder() {}

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
