package dev.panamax.vm;

import dev.panamax.kvm.VcpuFd;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Arrays;

/**
 * One virtual CPU: its fd and the platform thread (named {@code vcpu-N}) that runs it, dispatching
 * port I/O and MMIO exits to the VM's buses. An access no device claims reads as all ones and
 * writes are dropped, as on a real bus.
 */
public final class Vcpu {
    private static final VarHandle EXITS;

    static {
        try {
            EXITS = MethodHandles.lookup().findVarHandle(Vcpu.class, "exits", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final Vm vm;
    private final VcpuFd fd;
    private Thread thread;
    /** Returns from KVM_RUN; written only by the vCPU thread, read by any (opaque: a count needs no ordering). */
    private long exits;

    Vcpu(Vm vm, VcpuFd fd) {
        this.vm = vm;
        this.fd = fd;
    }

    public int index() {
        return fd.id();
    }

    /** The KVM vCPU, for setting up registers before the VM starts. */
    public VcpuFd fd() {
        return fd;
    }

    void start() {
        thread = Thread.ofPlatform().name("vcpu-" + index()).daemon(true).start(this::runLoop);
    }

    Thread thread() {
        return thread;
    }

    /** How many times this vCPU has left guest code so far (every return from {@code KVM_RUN}). */
    public long exits() {
        return (long) EXITS.getOpaque(this);
    }

    void kick() {
        fd.kick();
    }

    private void runLoop() {
        VmExit exit = null;
        try {
            fd.prepareRunThread();
            exit = loop();
        } catch (Throwable t) {
            exit = new VmExit(VmExit.Reason.INTERNAL_ERROR, index(), "vCPU thread failed: " + t, null);
        } finally {
            fd.finishRunThread();
            vm.vcpuEnded(this, exit);
        }
    }

    /** Runs the guest until it exits; returns the exit, or null when the host stopped it. */
    private VmExit loop() {
        while (true) {
            if (!vm.awaitRunnable(this)) {
                return null;
            }
            int reason = fd.run();
            EXITS.setOpaque(this, exits + 1);
            switch (reason) {
                case VcpuFd.EXIT_INTERRUPTED, VcpuFd.EXIT_INTR -> { } // a kick: recheck the requested state
                case VcpuFd.EXIT_IO -> {
                    VmExit failed = handlePortIo();
                    if (failed != null) {
                        return failed;
                    }
                }
                case VcpuFd.EXIT_MMIO -> {
                    VmExit failed = handleMmio();
                    if (failed != null) {
                        return failed;
                    }
                }
                case VcpuFd.EXIT_HLT -> {
                    return exit(VmExit.Reason.HALTED, "");
                }
                case VcpuFd.EXIT_SHUTDOWN -> {
                    return exit(VmExit.Reason.TRIPLE_FAULT, "KVM_EXIT_SHUTDOWN");
                }
                case VcpuFd.EXIT_FAIL_ENTRY -> {
                    return exit(VmExit.Reason.FAIL_ENTRY, String.format("hardware entry failure reason 0x%x", fd.failEntryReason()));
                }
                case VcpuFd.EXIT_INTERNAL_ERROR -> {
                    return exit(VmExit.Reason.INTERNAL_ERROR, String.format("KVM_EXIT_INTERNAL_ERROR suberror %d%s, data %s",
                            fd.internalErrorSuberror(), fd.internalErrorSuberror() == 1 ? " (emulation failure)" : "",
                            hex(fd.internalErrorData())));
                }
                case VcpuFd.EXIT_SYSTEM_EVENT -> {
                    int type = fd.systemEventType();
                    return switch (type) {
                        case VcpuFd.SYSTEM_EVENT_SHUTDOWN -> exit(VmExit.Reason.POWER_OFF, "");
                        case VcpuFd.SYSTEM_EVENT_RESET -> exit(VmExit.Reason.RESET, "");
                        case VcpuFd.SYSTEM_EVENT_CRASH -> exit(VmExit.Reason.GUEST_CRASH, "");
                        default -> exit(VmExit.Reason.UNEXPECTED_EXIT, "KVM_EXIT_SYSTEM_EVENT type " + type);
                    };
                }
                default -> {
                    return exit(VmExit.Reason.UNEXPECTED_EXIT, "KVM exit reason " + reason);
                }
            }
        }
    }

    private VmExit exit(VmExit.Reason reason, String detail) {
        return new VmExit(reason, index(), detail, fd.getRegs());
    }

    private VmExit handlePortIo() {
        int port = fd.ioPort();
        int size = fd.ioSize();
        boolean in = fd.ioDirection() == VcpuFd.IO_IN;
        AddressBus.Mapping<PortIoDevice> m = vm.ports().find(port);
        try {
            for (int i = 0, n = fd.ioCount(); i < n; i++) {
                if (in) {
                    fd.setIoValue(i, m == null ? -1 : m.device().in(port - (int) m.base(), size));
                } else if (m != null) {
                    m.device().out(port - (int) m.base(), size, fd.ioValue(i));
                }
            }
            return null;
        } catch (RuntimeException e) {
            return exit(VmExit.Reason.DEVICE_ERROR, String.format("%s failed on %s of port 0x%x: %s", nameOf(m), in ? "IN" : "OUT", port, e));
        }
    }

    private VmExit handleMmio() {
        long address = fd.mmioAddress();
        int length = fd.mmioLength();
        AddressBus.Mapping<MmioDevice> m = vm.mmio().find(address);
        try {
            if (!fd.mmioIsWrite()) {
                fd.setMmioData(m == null ? -1L : m.device().read(address - m.base(), length));
            } else if (m != null) {
                m.device().write(address - m.base(), length, fd.mmioData());
            }
            return null;
        } catch (RuntimeException e) {
            return exit(VmExit.Reason.DEVICE_ERROR, String.format("%s failed on MMIO %s of 0x%x: %s",
                    nameOf(m), fd.mmioIsWrite() ? "write" : "read", address, e));
        }
    }

    /** The device's name, or what failed instead when no device claimed the access (KVM's exit data). */
    private static String nameOf(AddressBus.Mapping<?> m) {
        return m == null ? "the exit data" : m.name();
    }

    private static String hex(long[] words) {
        return Arrays.stream(words).mapToObj(w -> String.format("0x%x", w)).toList().toString();
    }
}
