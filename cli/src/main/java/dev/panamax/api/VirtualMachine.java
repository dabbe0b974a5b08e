package dev.panamax.api;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.devices.I8042;
import dev.panamax.devices.Uart16550;
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
    private final Uart16550 console;
    private final I8042 keyboardController;
    private volatile String panic;

    private VirtualMachine(Builder b) {
        Vm created = Vm.create();
        try {
            String commandLine = b.commandLine.isBlank() ? BASE_COMMAND_LINE : BASE_COMMAND_LINE + " " + b.commandLine;
            LinuxBoot.prepare(created, new LinuxBoot.Spec(b.kernel, b.initrd, commandLine, b.cpus, b.memoryMib << 20, b.protocol));
            console = new Uart16550(created.interruptLine(Uart16550.COM1_IRQ), b.console);
            created.ports().register(Uart16550.COM1_PORT, Uart16550.PORT_COUNT, console, "COM1 (16550A UART)");
            keyboardController = new I8042(created.interruptLine(I8042.KEYBOARD_IRQ), created::requestExit);
            created.ports().register(I8042.DATA_PORT, 1, keyboardController.dataPort(), "i8042 data");
            created.ports().register(I8042.COMMAND_PORT, 1, keyboardController.commandPort(), "i8042 command");
            created.ports().register(0x80, 1, new dev.panamax.vm.PortIoDevice() {
                @Override
                public int in(int offset, int size) {
                    return 0xff;
                }

                @Override
                public void out(int offset, int size, int value) {
                    // POST codes; Linux writes here for I/O delays
                }
            }, "POST port");
            console.addLineListener(line -> {
                if (panic == null && line.contains(PANIC_MARKER)) {
                    panic = line.strip();
                }
            });
            created.closeOnExit(console::flush);
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
        return keyboardController.sendCtrlAltDel();
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

    public Vm.State state() {
        return vm.state();
    }

    /** Types {@code bytes} on the serial console; returns how many fit in its buffer. */
    public int sendConsoleInput(byte[] bytes) {
        return console.receive(bytes);
    }

    /** Calls {@code listener} with each line the guest writes to its console, on a vCPU thread: keep it quick. */
    public void addConsoleLineListener(Consumer<String> listener) {
        console.addLineListener(listener);
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
