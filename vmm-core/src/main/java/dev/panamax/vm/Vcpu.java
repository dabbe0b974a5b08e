package dev.panamax.vm;

import dev.panamax.kvm.CpuidEntry;
import dev.panamax.kvm.LapicState;
import dev.panamax.kvm.MsrEntry;
import dev.panamax.kvm.Regs;
import dev.panamax.kvm.SpecialRegs;
import dev.panamax.kvm.VcpuFd;
import dev.panamax.sys.CpuSet;
import dev.panamax.sys.HostThreads;
import dev.panamax.sys.SyscallProfile;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CountDownLatch;

/**
 * One virtual CPU: its fd and the platform thread (named {@code vcpu-N}) that runs it, dispatching
 * port I/O and MMIO exits to the VM's buses. An access no device claims reads as all ones and
 * writes are dropped, as on a real bus.
 */
public final class Vcpu {
    /**
     * The exits counted by kind, after Firecracker's vCPU metrics: port reads and writes, MMIO reads
     * and writes, HLT and KVM_EXIT_SHUTDOWN (a triple fault), and the other exits that end the vCPU
     * in error (entry failure, internal error, an unexpected exit, a device that failed an access).
     */
    public enum ExitKind { IO_IN, IO_OUT, MMIO_READ, MMIO_WRITE, HLT, SHUTDOWN, FAILURE }

    private static final VarHandle EXITS;
    private static final VarHandle EXIT_COUNTS = MethodHandles.arrayElementVarHandle(long[].class);

    static {
        try {
            EXITS = MethodHandles.lookup().findVarHandle(Vcpu.class, "exits", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Far above any CPU's XSAVE area (about 11 KiB with AMX), so a hostile length allocates nothing large. */
    static final int MAX_XSAVE_SIZE = 1 << 20;

    private final Vm vm;
    private final VcpuFd fd;
    private Thread thread;
    /** The host CPUs the thread pins itself to, or null to run where the process may; set before start. */
    private CpuSet affinity;
    private volatile int hostThreadId;
    /** Counted down once the thread has its id and its affinity (or failed to get it). */
    private final CountDownLatch placed = new CountDownLatch(1);
    /** Returns from KVM_RUN; written only by the vCPU thread, read by any (opaque: a count needs no ordering). */
    private long exits;
    /** By {@link ExitKind#ordinal()}; written only by the vCPU thread, read by any (opaque, as {@link #exits}). */
    private final long[] exitCounts = new long[ExitKind.values().length];
    /** Set by the thread once it is out of KVM_RUN for good, before the VM hears of its end. */
    private volatile boolean ended;

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

    /**
     * Pins this vCPU's thread to the host CPUs {@code cpus}, which the thread does itself as it
     * starts, before it first enters the guest; only before the VM starts.
     */
    public void pinTo(CpuSet cpus) {
        if (thread != null) {
            throw new IllegalStateException("vCPU " + index() + " is running already; pin it before the VM starts");
        }
        this.affinity = Objects.requireNonNull(cpus, "cpus");
    }

    /** The host CPUs this vCPU is pinned to, or null when it is not pinned. */
    public CpuSet affinity() {
        return affinity;
    }

    /** The Linux thread id of this vCPU's thread ({@code /proc/PID/task/TID}), or 0 before the VM starts. */
    public int hostThreadId() {
        return hostThreadId;
    }

    /** Starts the thread, and returns once it has pinned itself (so its affinity is in place, or its failure known). */
    void start() {
        thread = Thread.ofPlatform().name("vcpu-" + index()).daemon(true).start(this::runLoop);
        boolean interrupted = false;
        while (true) {
            try {
                placed.await();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    Thread thread() {
        return thread;
    }

    /** How many times this vCPU has left guest code so far (every return from {@code KVM_RUN}). */
    public long exits() {
        return (long) EXITS.getOpaque(this);
    }

    /** How many exits of {@code kind} this vCPU has had so far. */
    public long exits(ExitKind kind) {
        return (long) EXIT_COUNTS.getOpaque(exitCounts, kind.ordinal());
    }

    /** KVM's names of {@code KVM_MP_STATE_*}, by value. */
    private static final List<String> MP_STATES = List.of("runnable", "uninitialized", "init-received", "halted", "sipi-received",
            "stopped", "check-stop", "operating", "load", "ap-reset-hold", "suspended");
    /** RFLAGS.IF: the vCPU takes interrupts. */
    private static final long RFLAGS_IF = 1 << 9;

    /**
     * One line on where this vCPU stands, for the report on a guest that had to be killed: its exits
     * by kind and, once its thread has ended (so KVM_RUN no longer holds it), its instruction pointer,
     * whether interrupts were on and KVM's run state ({@code halted}: waiting for an interrupt).
     */
    public String describe() {
        StringBuilder line = new StringBuilder("vcpu ").append(index()).append(": ").append(exits()).append(" exits (");
        for (ExitKind kind : ExitKind.values()) {
            line.append(kind == ExitKind.IO_IN ? "" : ", ").append(kind.name().toLowerCase().replace('_', ' ')).append(' ').append(exits(kind));
        }
        line.append(')');
        if (!ended) {
            return line.append(thread == null ? ", never started" : ", its thread still running").toString();
        }
        try {
            Regs regs = fd.getRegs();
            int mpState = fd.getMpState();
            return line.append(String.format(", stopped at rip=%016x rflags=%08x (interrupts %s), KVM state %s", regs.rip, regs.rflags,
                    (regs.rflags & RFLAGS_IF) != 0 ? "on" : "off", mpState >= 0 && mpState < MP_STATES.size() ? MP_STATES.get(mpState)
                            : Integer.toString(mpState))).toString();
        } catch (RuntimeException e) {
            return line.append(", its registers unreadable: ").append(e.getMessage()).toString();
        }
    }

    /** On the vCPU thread only. */
    private void count(ExitKind kind) {
        int i = kind.ordinal();
        EXIT_COUNTS.setOpaque(exitCounts, i, exitCounts[i] + 1);
    }

    void kick() {
        fd.kick();
    }

    private void runLoop() {
        VmExit exit = null;
        try {
            try {
                hostThreadId = HostThreads.currentThreadId();
                if (affinity != null) {
                    HostThreads.pinCurrentThread(affinity);
                }
            } catch (RuntimeException e) {
                exit = new VmExit(VmExit.Reason.INTERNAL_ERROR, index(), "vCPU " + index() + " could not be pinned to host CPUs "
                        + affinity + ": " + e.getMessage(), null);
                return;
            } finally {
                placed.countDown();
            }
            fd.prepareRunThread();
            try {
                vm.sandbox().confineCurrentThread(SyscallProfile.VCPU); // after the set-up, before the guest runs
            } catch (RuntimeException e) {
                exit = new VmExit(VmExit.Reason.INTERNAL_ERROR, index(), "vCPU " + index() + " could not install its seccomp filter: "
                        + e.getMessage() + " (run with --no-seccomp on a kernel without seccomp user notification, Linux 5.0)", null);
                return;
            }
            exit = loop();
        } catch (Throwable t) {
            exit = new VmExit(VmExit.Reason.INTERNAL_ERROR, index(), "vCPU thread failed: " + t, null);
        } finally {
            fd.finishRunThread();
            ended = true;
            vm.vcpuEnded(this, exit);
        }
    }

    /** Runs the guest until it exits; returns the exit, or null when the host stopped it. */
    private VmExit loop() {
        boolean exitPending = false; // the last exit was IO or MMIO, whose instruction the next KVM_RUN finishes
        while (true) {
            int reason;
            if (exitPending) {
                // Never park with an IO or MMIO instruction unfinished: a snapshot taken while paused
                // must hold registers at an instruction boundary (an IN's value in its register, RIP
                // past it). KVM_RUN finishes the instruction before anything else, so: go on running
                // if asked to (a pause requested from now on kicks this run, after the instruction
                // is done), else only finish it. Checking and then parking in awaitRunnable would let
                // a pause requested in between park the vCPU with the instruction unfinished.
                reason = vm.runRequested() ? fd.run() : fd.completePendingExit();
            } else {
                if (!vm.awaitRunnable(this)) {
                    return null;
                }
                reason = fd.run();
            }
            exitPending = false;
            EXITS.setOpaque(this, exits + 1);
            switch (reason) {
                case VcpuFd.EXIT_INTERRUPTED, VcpuFd.EXIT_INTR -> { } // a kick: recheck the requested state
                case VcpuFd.EXIT_IO -> {
                    VmExit failed = handlePortIo();
                    if (failed != null) {
                        return failed;
                    }
                    exitPending = true;
                }
                case VcpuFd.EXIT_MMIO -> {
                    VmExit failed = handleMmio();
                    if (failed != null) {
                        return failed;
                    }
                    exitPending = true;
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

    // ---- saved state ----

    /** One vCPU's state as a snapshot holds it, read and checked, not yet applied. */
    record SavedState(List<CpuidEntry> cpuid, int mpState, byte[] regs, byte[] sregs, byte[] xsave, byte[] xcrs,
            byte[] debugRegs, byte[] lapic, List<MsrEntry> msrs, byte[] events) {}

    /**
     * Writes this vCPU's state, which must be out of KVM_RUN, in the order {@link #applyState}
     * applies it.
     *
     * @param msrIndices the MSRs to save (those KVM_GET_MSRS reads on this VM)
     * @param xsaveSize this VM's XSAVE area size
     */
    void saveState(StateWriter out, int[] msrIndices, int xsaveSize) {
        List<CpuidEntry> cpuid = fd.getCpuid();
        out.i32(cpuid.size());
        for (CpuidEntry e : cpuid) {
            out.i32(e.function()).i32(e.index()).i32(e.flags()).i32(e.eax()).i32(e.ebx()).i32(e.ecx()).i32(e.edx());
        }
        out.i32(fd.getMpState());
        out.bytes(fd.getRegs().toBytes());
        out.bytes(fd.getSpecialRegs().toBytes());
        out.bytes(fd.getXsave(xsaveSize));
        out.bytes(fd.getXcrs());
        out.bytes(fd.getDebugRegs());
        out.bytes(fd.getLapic().toBytes());
        List<MsrEntry> msrs = fd.getMsrs(msrIndices);
        if (msrs.size() != msrIndices.length) {
            throw new IllegalStateException(String.format("vCPU %d: KVM_GET_MSRS could not read MSR 0x%x, which it read before",
                    index(), msrIndices[msrs.size()]));
        }
        out.i32(msrs.size());
        for (MsrEntry msr : msrs) {
            out.i32(msr.index()).i64(msr.data());
        }
        out.bytes(fd.getVcpuEvents());
    }

    /**
     * Reads and checks what {@link #saveState} wrote, applying nothing.
     *
     * @param xsaveSize this host's XSAVE area size, which the saved one must equal
     * @param knownMsrs the MSRs this host's KVM saves and restores ({@code KVM_GET_MSR_INDEX_LIST})
     */
    static SavedState readState(StateReader in, int xsaveSize, Set<Integer> knownMsrs) {
        int entries = in.count(VcpuFd.MAX_CPUID_ENTRIES, "CPUID entry");
        List<CpuidEntry> cpuid = new ArrayList<>(entries);
        for (int i = 0; i < entries; i++) {
            cpuid.add(new CpuidEntry(in.i32("CPUID function"), in.i32("CPUID index"), in.i32("CPUID flags"),
                    in.i32("CPUID eax"), in.i32("CPUID ebx"), in.i32("CPUID ecx"), in.i32("CPUID edx")));
        }
        int mpState = in.i32In(0, VcpuFd.MAX_MP_STATE, "MP state");
        byte[] regs = in.bytesOfSize(Regs.SIZE, "general registers (struct kvm_regs)");
        byte[] sregs = in.bytesOfSize(SpecialRegs.SIZE, "special registers (struct kvm_sregs)");
        byte[] xsave = in.bytes(MAX_XSAVE_SIZE, "XSAVE area");
        if (xsave.length != xsaveSize) {
            throw in.fail("the XSAVE area is " + xsave.length + " bytes, and this host's KVM uses " + xsaveSize
                    + ": the snapshot was taken on a CPU with other XSAVE features");
        }
        byte[] xcrs = in.bytesOfSize(VcpuFd.XCRS_SIZE, "XCRs (struct kvm_xcrs)");
        int xcrCount = VcpuFd.xcrCount(xcrs);
        if (xcrCount < 0 || xcrCount > VcpuFd.MAX_XCRS) {
            throw in.fail("the XCR count is " + Integer.toUnsignedString(xcrCount) + ", more than the " + VcpuFd.MAX_XCRS + " KVM has");
        }
        byte[] debugRegs = in.bytesOfSize(VcpuFd.DEBUGREGS_SIZE, "debug registers (struct kvm_debugregs)");
        byte[] lapic = in.bytesOfSize(LapicState.SIZE, "LAPIC state (struct kvm_lapic_state)");
        int msrCount = in.count(knownMsrs.size(), "MSR");
        List<MsrEntry> msrs = new ArrayList<>(msrCount);
        for (int i = 0; i < msrCount; i++) {
            int index = in.i32("MSR index");
            long data = in.i64("MSR value");
            if (!knownMsrs.contains(index)) {
                throw in.fail(String.format("MSR 0x%x is not one this host's KVM saves and restores", index));
            }
            msrs.add(new MsrEntry(index, data));
        }
        byte[] events = in.bytesOfSize(VcpuFd.VCPU_EVENTS_SIZE, "vCPU events (struct kvm_vcpu_events)");
        return new SavedState(List.copyOf(cpuid), mpState, regs, sregs, xsave, xcrs, debugRegs, lapic, List.copyOf(msrs), events);
    }

    /**
     * Applies {@code state} to this vCPU, which has not run yet, in Firecracker's order: TSC
     * frequency, CPUID, MP state, registers, special registers, XSAVE, XCRs, debug registers, LAPIC,
     * MSRs (after the LAPIC and CPUID they depend on), vCPU events last.
     *
     * @throws StateFormatException naming the part KVM refused
     */
    void applyState(SavedState state, int tscKhz, StateReader in) {
        apply(in, "TSC frequency of " + tscKhz + " kHz", () -> {
            if (fd.getTscKhz() != tscKhz) {
                fd.setTscKhz(tscKhz);
            }
        });
        apply(in, "CPUID table", () -> fd.setCpuid(state.cpuid()));
        apply(in, "MP state " + state.mpState(), () -> fd.setMpState(state.mpState()));
        apply(in, "general registers", () -> fd.setRegs(Regs.fromBytes(state.regs())));
        apply(in, "special registers", () -> fd.setSpecialRegs(SpecialRegs.fromBytes(state.sregs())));
        apply(in, "XSAVE area", () -> fd.setXsave(state.xsave()));
        apply(in, "XCRs", () -> fd.setXcrs(state.xcrs()));
        apply(in, "debug registers", () -> fd.setDebugRegs(state.debugRegs()));
        apply(in, "LAPIC state", () -> fd.setLapic(LapicState.fromBytes(state.lapic())));
        apply(in, "MSRs", () -> fd.setMsrs(state.msrs()));
        apply(in, "vCPU events", () -> fd.setVcpuEvents(state.events()));
    }

    private void apply(StateReader in, String what, Runnable step) {
        try {
            step.run();
        } catch (RuntimeException e) {
            throw in.fail("KVM refused vCPU " + index() + "'s " + what + ": " + e.getMessage());
        }
    }

    private VmExit exit(VmExit.Reason reason, String detail) {
        ExitKind kind = switch (reason) {
            case HALTED -> ExitKind.HLT;
            case TRIPLE_FAULT -> ExitKind.SHUTDOWN;
            case FAIL_ENTRY, INTERNAL_ERROR, UNEXPECTED_EXIT, DEVICE_ERROR -> ExitKind.FAILURE;
            default -> null; // the guest's own ends (power off, reset, crash) are no failure of the vCPU
        };
        if (kind != null) {
            count(kind);
        }
        return new VmExit(reason, index(), detail, fd.getRegs());
    }

    private VmExit handlePortIo() {
        int port = fd.ioPort();
        int size = fd.ioSize();
        boolean in = fd.ioDirection() == VcpuFd.IO_IN;
        count(in ? ExitKind.IO_IN : ExitKind.IO_OUT);
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
        count(fd.mmioIsWrite() ? ExitKind.MMIO_WRITE : ExitKind.MMIO_READ);
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
