package dev.panamax.kvm;

import static dev.panamax.kvm.KvmAbi.KVM_CPUID2;
import static dev.panamax.kvm.KvmAbi.KVM_CPUID_ENTRY2;
import static dev.panamax.kvm.KvmAbi.KVM_DEBUGREGS;
import static dev.panamax.kvm.KvmAbi.KVM_FPU;
import static dev.panamax.kvm.KvmAbi.KVM_LAPIC_STATE;
import static dev.panamax.kvm.KvmAbi.KVM_MP_STATE;
import static dev.panamax.kvm.KvmAbi.KVM_MSRS;
import static dev.panamax.kvm.KvmAbi.KVM_MSR_ENTRY;
import static dev.panamax.kvm.KvmAbi.KVM_REGS;
import static dev.panamax.kvm.KvmAbi.KVM_RUN_STRUCT;
import static dev.panamax.kvm.KvmAbi.KVM_SIGNAL_MASK;
import static dev.panamax.kvm.KvmAbi.KVM_SREGS;
import static dev.panamax.kvm.KvmAbi.KVM_VCPU_EVENTS;
import static dev.panamax.kvm.KvmAbi.KVM_XCRS;
import static dev.panamax.kvm.KvmAbi.KVM_XSAVE;
import static dev.panamax.kvm.KvmAbi.offset;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import dev.panamax.sys.Fd;
import dev.panamax.sys.Libc;
import dev.panamax.sys.NativeCallException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * A vCPU fd and its {@code kvm_run} page. {@link #run()} and the exit accessors belong to the one
 * thread that runs the vCPU; {@link #kick()} may be called from any thread to pull that thread out
 * of {@code KVM_RUN}.
 *
 * <p>Kicking uses {@code immediate_exit} plus a real-time signal that is blocked in the vCPU thread
 * except while it is inside {@code KVM_RUN} (KVM_SET_SIGNAL_MASK): a kick arriving in the guest makes
 * KVM_RUN return EINTR, a kick arriving outside it makes the next KVM_RUN return at once, and no
 * signal handler ever runs in the JVM.
 */
public final class VcpuFd extends Fd {
    /** What {@link #run()} returns when a kick (or another signal) interrupted KVM_RUN. */
    public static final int EXIT_INTERRUPTED = -1;
    /** SIGRTMIN + 6 in glibc terms; the JVM uses no real-time signals. */
    static final int KICK_SIGNAL = 40;

    public static final int EXIT_IO = KvmAbi.KVM_EXIT_IO;
    public static final int EXIT_MMIO = KvmAbi.KVM_EXIT_MMIO;
    public static final int EXIT_HLT = KvmAbi.KVM_EXIT_HLT;
    public static final int EXIT_SHUTDOWN = KvmAbi.KVM_EXIT_SHUTDOWN;
    public static final int EXIT_FAIL_ENTRY = KvmAbi.KVM_EXIT_FAIL_ENTRY;
    public static final int EXIT_INTERNAL_ERROR = KvmAbi.KVM_EXIT_INTERNAL_ERROR;
    public static final int EXIT_SYSTEM_EVENT = KvmAbi.KVM_EXIT_SYSTEM_EVENT;
    public static final int EXIT_INTR = KvmAbi.KVM_EXIT_INTR;
    public static final int IO_IN = KvmAbi.KVM_EXIT_IO_IN;
    public static final int SYSTEM_EVENT_SHUTDOWN = KvmAbi.KVM_SYSTEM_EVENT_SHUTDOWN;
    public static final int SYSTEM_EVENT_RESET = KvmAbi.KVM_SYSTEM_EVENT_RESET;
    public static final int SYSTEM_EVENT_CRASH = KvmAbi.KVM_SYSTEM_EVENT_CRASH;

    private volatile List<CpuidEntry> cpuidSet = List.of();
    private static final long IMMEDIATE_EXIT = offset(KVM_RUN_STRUCT, "immediate_exit");
    private static final long EXIT_REASON = offset(KVM_RUN_STRUCT, "exit_reason");
    private static final long IO_DIRECTION = offset(KVM_RUN_STRUCT, "io", "direction");
    private static final long IO_SIZE = offset(KVM_RUN_STRUCT, "io", "size");
    private static final long IO_PORT = offset(KVM_RUN_STRUCT, "io", "port");
    private static final long IO_COUNT = offset(KVM_RUN_STRUCT, "io", "count");
    private static final long IO_DATA_OFFSET = offset(KVM_RUN_STRUCT, "io", "data_offset");
    private static final long MMIO_PHYS_ADDR = offset(KVM_RUN_STRUCT, "mmio", "phys_addr");
    private static final long MMIO_DATA = offset(KVM_RUN_STRUCT, "mmio", "data");
    private static final long MMIO_LEN = offset(KVM_RUN_STRUCT, "mmio", "len");
    private static final long MMIO_IS_WRITE = offset(KVM_RUN_STRUCT, "mmio", "is_write");
    private static final long FAIL_ENTRY_REASON = offset(KVM_RUN_STRUCT, "fail_entry", "hardware_entry_failure_reason");
    private static final long INTERNAL_SUBERROR = offset(KVM_RUN_STRUCT, "internal", "suberror");
    private static final long INTERNAL_NDATA = offset(KVM_RUN_STRUCT, "internal", "ndata");
    private static final long INTERNAL_DATA = offset(KVM_RUN_STRUCT, "internal", "data");
    private static final long SYSTEM_EVENT_TYPE = offset(KVM_RUN_STRUCT, "system_event", "type");
    private static final VarHandle BYTE = JAVA_BYTE.varHandle();

    private final int id;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment run;
    private final long runAddress;
    private final long runSize;
    // Used only by the thread in run(): no allocation per exit.
    private final MemorySegment runCallState = Libc.allocateCallState(arena);
    private final MemorySegment kickSignalSet = Libc.sigsetOf(arena, KICK_SIGNAL);
    private final MemorySegment zeroTimeout = arena.allocate(16, 8);
    private final Object kickLock = new Object();
    private long runThread; // pthread_t of the thread between prepareRunThread and finishRunThread; guarded by kickLock

    VcpuFd(int fd, int id, int mmapSize) {
        super(fd, "kvm-vcpu-" + id);
        this.id = id;
        try {
            MemorySegment raw = Libc.mmap(mmapSize, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, 0, "kvm_run of vcpu " + id);
            this.runAddress = raw.address();
            this.runSize = mmapSize;
            this.run = raw.reinterpret(mmapSize, arena, null);
        } catch (RuntimeException e) {
            super.close();
            arena.close();
            throw e;
        }
    }

    public int id() {
        return id;
    }

    // ---- register state ----

    /** {@code int ioctl(vcpu_fd, KVM_GET_REGS, struct kvm_regs *)} */
    public Regs getRegs() {
        return get(KVM_REGS, KvmAbi.KVM_GET_REGS, Regs::readFrom);
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_REGS, struct kvm_regs *)} */
    public void setRegs(Regs regs) {
        set(KVM_REGS, KvmAbi.KVM_SET_REGS, regs::writeTo);
    }

    /** {@code int ioctl(vcpu_fd, KVM_GET_SREGS, struct kvm_sregs *)} */
    public SpecialRegs getSpecialRegs() {
        return get(KVM_SREGS, KvmAbi.KVM_GET_SREGS, SpecialRegs::readFrom);
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_SREGS, struct kvm_sregs *)} */
    public void setSpecialRegs(SpecialRegs sregs) {
        set(KVM_SREGS, KvmAbi.KVM_SET_SREGS, sregs::writeTo);
    }

    /** {@code int ioctl(vcpu_fd, KVM_GET_FPU, struct kvm_fpu *)} */
    public Fpu getFpu() {
        return get(KVM_FPU, KvmAbi.KVM_GET_FPU, Fpu::readFrom);
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_FPU, struct kvm_fpu *)} */
    public void setFpu(Fpu fpu) {
        set(KVM_FPU, KvmAbi.KVM_SET_FPU, fpu::writeTo);
    }

    // ---- state saved whole, as the struct's bytes ----

    /** The size of {@code struct kvm_vcpu_events}. */
    public static final int VCPU_EVENTS_SIZE = (int) KVM_VCPU_EVENTS.byteSize();
    /** The size of {@code struct kvm_debugregs}. */
    public static final int DEBUGREGS_SIZE = (int) KVM_DEBUGREGS.byteSize();
    /** The size of {@code struct kvm_xcrs}. */
    public static final int XCRS_SIZE = (int) KVM_XCRS.byteSize();
    /** The most XCRs a {@code struct kvm_xcrs} holds ({@code KVM_MAX_XCRS}). */
    public static final int MAX_XCRS = KvmAbi.KVM_MAX_XCRS;
    /** The size of {@code struct kvm_xsave} without dynamic features; {@link VmFd#xsaveSize()} gives this host's. */
    public static final int XSAVE_LEGACY_SIZE = (int) KVM_XSAVE.byteSize();
    /** The most CPUID entries KVM takes for a vCPU ({@code KVM_MAX_CPUID_ENTRIES}). */
    public static final int MAX_CPUID_ENTRIES = KvmAbi.MAX_CPUID_ENTRIES;
    /** The highest {@code KVM_MP_STATE_*} value on x86 ({@code KVM_MP_STATE_SUSPENDED}). */
    public static final int MAX_MP_STATE = KvmAbi.KVM_MP_STATE_SUSPENDED;
    /** {@code KVM_MP_STATE_RUNNABLE}. */
    public static final int MP_STATE_RUNNABLE = KvmAbi.KVM_MP_STATE_RUNNABLE;

    private static final long NR_XCRS = offset(KVM_XCRS, "nr_xcrs");

    /**
     * {@code int ioctl(vcpu_fd, KVM_GET_XSAVE2, struct kvm_xsave *)}, or {@code KVM_GET_XSAVE} when
     * {@code size} is the legacy 4096: the FPU, SSE, AVX and other XSAVE-managed state.
     *
     * @param size this host's XSAVE size, {@link VmFd#xsaveSize()}
     */
    public byte[] getXsave(int size) {
        if (size < XSAVE_LEGACY_SIZE) {
            throw new IllegalArgumentException("an XSAVE area is at least " + XSAVE_LEGACY_SIZE + " bytes, not " + size);
        }
        long request = size == XSAVE_LEGACY_SIZE ? KvmAbi.KVM_GET_XSAVE : KvmAbi.KVM_GET_XSAVE2;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(size, 8);
            KvmIoctl.call(fd(), request, s);
            return s.toArray(JAVA_BYTE);
        }
    }

    /**
     * {@code int ioctl(vcpu_fd, KVM_SET_XSAVE, struct kvm_xsave *)}: KVM reads as many bytes as
     * {@link VmFd#xsaveSize()}; {@code xsave} must be that long.
     */
    public void setXsave(byte[] xsave) {
        if (xsave.length < XSAVE_LEGACY_SIZE) {
            throw new IllegalArgumentException("an XSAVE area is at least " + XSAVE_LEGACY_SIZE + " bytes, not " + xsave.length);
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(xsave.length, 8);
            MemorySegment.copy(xsave, 0, s, JAVA_BYTE, 0, xsave.length);
            KvmIoctl.call(fd(), KvmAbi.KVM_SET_XSAVE, s);
        }
    }

    /** {@code int ioctl(vcpu_fd, KVM_GET_XCRS, struct kvm_xcrs *)}: the extended control registers (XCR0). */
    public byte[] getXcrs() {
        return getBytes(KVM_XCRS, KvmAbi.KVM_GET_XCRS);
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_XCRS, struct kvm_xcrs *)}; {@code xcrs} is {@link #XCRS_SIZE} bytes. */
    public void setXcrs(byte[] xcrs) {
        setBytes(KVM_XCRS, KvmAbi.KVM_SET_XCRS, xcrs);
    }

    /** The {@code nr_xcrs} field of {@code struct kvm_xcrs} bytes. */
    public static int xcrCount(byte[] xcrs) {
        return StructBytes.decode(KVM_XCRS, xcrs, s -> s.get(JAVA_INT, NR_XCRS));
    }

    /** {@code int ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, struct kvm_vcpu_events *)}: pending exceptions, interrupts, NMIs, SMIs. */
    public byte[] getVcpuEvents() {
        return getBytes(KVM_VCPU_EVENTS, KvmAbi.KVM_GET_VCPU_EVENTS);
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, struct kvm_vcpu_events *)}; {@link #VCPU_EVENTS_SIZE} bytes. */
    public void setVcpuEvents(byte[] events) {
        setBytes(KVM_VCPU_EVENTS, KvmAbi.KVM_SET_VCPU_EVENTS, events);
    }

    /** {@code int ioctl(vcpu_fd, KVM_GET_DEBUGREGS, struct kvm_debugregs *)} */
    public byte[] getDebugRegs() {
        return getBytes(KVM_DEBUGREGS, KvmAbi.KVM_GET_DEBUGREGS);
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_DEBUGREGS, struct kvm_debugregs *)}; {@link #DEBUGREGS_SIZE} bytes. */
    public void setDebugRegs(byte[] debugRegs) {
        setBytes(KVM_DEBUGREGS, KvmAbi.KVM_SET_DEBUGREGS, debugRegs);
    }

    /** {@code int ioctl(vcpu_fd, KVM_GET_MP_STATE, struct kvm_mp_state *)}: {@code KVM_MP_STATE_*}. */
    public int getMpState() {
        return get(KVM_MP_STATE, KvmAbi.KVM_GET_MP_STATE, s -> s.get(JAVA_INT, 0));
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_MP_STATE, struct kvm_mp_state *)} */
    public void setMpState(int mpState) {
        set(KVM_MP_STATE, KvmAbi.KVM_SET_MP_STATE, s -> s.set(JAVA_INT, 0, mpState));
    }

    /** {@code int ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0)}: the guest TSC frequency in kHz. */
    public int getTscKhz() {
        return KvmIoctl.call(fd(), KvmAbi.KVM_GET_TSC_KHZ);
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_TSC_KHZ, unsigned long khz)}: needs KVM_CAP_TSC_CONTROL. */
    public void setTscKhz(int khz) {
        KvmIoctl.call(fd(), KvmAbi.KVM_SET_TSC_KHZ, Integer.toUnsignedLong(khz));
    }

    /** {@code int ioctl(vcpu_fd, KVM_GET_CPUID2, struct kvm_cpuid2 *)}: the CPUID table this vCPU was given. */
    public List<CpuidEntry> getCpuid() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment table = a.allocate(KVM_CPUID2.byteSize() + MAX_CPUID_ENTRIES * KVM_CPUID_ENTRY2.byteSize(), 8);
            table.set(JAVA_INT, offset(KVM_CPUID2, "nent"), MAX_CPUID_ENTRIES);
            KvmIoctl.call(fd(), KvmAbi.KVM_GET_CPUID2, table);
            return Kvm.CpuidTable.read(table);
        }
    }

    private byte[] getBytes(MemoryLayout layout, long request) {
        return get(layout, request, s -> s.toArray(JAVA_BYTE));
    }

    private void setBytes(MemoryLayout layout, long request, byte[] bytes) {
        StructBytes.requireSize(layout, bytes);
        set(layout, request, s -> MemorySegment.copy(bytes, 0, s, JAVA_BYTE, 0, bytes.length));
    }

    /** A "get" ioctl filling a struct of {@code layout}, decoded by {@code decode}. */
    private <T> T get(MemoryLayout layout, long request, Function<MemorySegment, T> decode) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(layout);
            KvmIoctl.call(fd(), request, s);
            return decode.apply(s);
        }
    }

    /** A "set" ioctl taking a struct of {@code layout}, filled by {@code encode}. */
    private void set(MemoryLayout layout, long request, Consumer<MemorySegment> encode) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(layout);
            encode.accept(s);
            KvmIoctl.call(fd(), request, s);
        }
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_MSRS, struct kvm_msrs *)}; every entry must be accepted. */
    public void setMsrs(List<MsrEntry> entries) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = msrTable(a, entries.size());
            for (int i = 0; i < entries.size(); i++) {
                s.set(JAVA_INT, msrAt(i) + offset(KVM_MSR_ENTRY, "index"), entries.get(i).index());
                s.set(JAVA_LONG, msrAt(i) + offset(KVM_MSR_ENTRY, "data"), entries.get(i).data());
            }
            int written = KvmIoctl.call(fd(), KvmAbi.KVM_SET_MSRS, s);
            if (written != entries.size()) {
                throw new IllegalArgumentException("KVM_SET_MSRS rejected MSR 0x"
                        + Integer.toHexString(entries.get(written).index()) + " = 0x" + Long.toHexString(entries.get(written).data()));
            }
        }
    }

    /**
     * {@code int ioctl(vcpu_fd, KVM_GET_MSRS, struct kvm_msrs *)}: the values of the MSRs {@code
     * indices} names, in their order. KVM stops at the first MSR it cannot read, so the list may be
     * shorter than {@code indices}: its size is the position of that MSR.
     */
    public List<MsrEntry> getMsrs(int[] indices) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = msrTable(a, indices.length);
            for (int i = 0; i < indices.length; i++) {
                s.set(JAVA_INT, msrAt(i) + offset(KVM_MSR_ENTRY, "index"), indices[i]);
            }
            int read = KvmIoctl.call(fd(), KvmAbi.KVM_GET_MSRS, s);
            List<MsrEntry> entries = new ArrayList<>(read);
            for (int i = 0; i < read; i++) {
                entries.add(new MsrEntry(indices[i], s.get(JAVA_LONG, msrAt(i) + offset(KVM_MSR_ENTRY, "data"))));
            }
            return List.copyOf(entries);
        }
    }

    /**
     * Of {@code candidates} (usually {@link Kvm#msrIndexList()}), those KVM_GET_MSRS can read on this
     * vCPU, in their order: a listed MSR can still be absent (a feature the vCPU's CPUID lacks), and
     * one such MSR would make KVM_GET_MSRS stop there.
     */
    public int[] readableMsrs(int[] candidates) {
        int[] remaining = candidates.clone();
        int length = remaining.length;
        while (true) {
            int read = getMsrs(Arrays.copyOf(remaining, length)).size();
            if (read == length) {
                return Arrays.copyOf(remaining, length);
            }
            // Drop the MSR KVM stopped at and ask again for the rest.
            System.arraycopy(remaining, read + 1, remaining, read, length - read - 1);
            length--;
        }
    }

    private static MemorySegment msrTable(Arena a, int count) {
        MemorySegment s = a.allocate(KVM_MSRS.byteSize() + count * KVM_MSR_ENTRY.byteSize(), 8);
        s.set(JAVA_INT, offset(KVM_MSRS, "nmsrs"), count);
        return s;
    }

    private static long msrAt(int i) {
        return KVM_MSRS.byteSize() + i * KVM_MSR_ENTRY.byteSize();
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_CPUID2, struct kvm_cpuid2 *)}: what CPUID reports to this vCPU. */
    public void setCpuid(List<CpuidEntry> entries) {
        try (Arena a = Arena.ofConfined()) {
            KvmIoctl.call(fd(), KvmAbi.KVM_SET_CPUID2, Kvm.CpuidTable.write(a, entries));
        }
        cpuidSet = List.copyOf(entries);
    }

    /**
     * What the last {@link #setCpuid} gave this vCPU (empty before one): for a caller that cannot
     * ask KVM while the vCPU runs, since every vCPU ioctl waits for {@code KVM_RUN} to return.
     */
    public List<CpuidEntry> cpuidSet() {
        return cpuidSet;
    }

    /** {@code int ioctl(vcpu_fd, KVM_GET_LAPIC, struct kvm_lapic_state *)}; needs the in-kernel irqchip. */
    public LapicState getLapic() {
        return get(KVM_LAPIC_STATE, KvmAbi.KVM_GET_LAPIC, s -> new LapicState(s.toArray(JAVA_BYTE)));
    }

    /** {@code int ioctl(vcpu_fd, KVM_SET_LAPIC, struct kvm_lapic_state *)} */
    public void setLapic(LapicState state) {
        set(KVM_LAPIC_STATE, KvmAbi.KVM_SET_LAPIC, s -> MemorySegment.copy(MemorySegment.ofArray(state.bytes()), 0, s, 0, LapicState.SIZE));
    }

    // ---- running ----

    /**
     * Makes the calling thread the one that runs this vCPU: blocks the kick signal in it except
     * inside KVM_RUN, and records it so that {@link #kick()} can reach it.
     */
    public void prepareRunThread() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment previous = a.allocate(Libc.SIGSET_BYTES, 8);
            Libc.pthreadSigmask(Libc.SIG_BLOCK, kickSignalSet, previous);
            Libc.setSignal(previous, KICK_SIGNAL, false);
            MemorySegment mask = a.allocate(KVM_SIGNAL_MASK.byteSize() + Libc.KERNEL_SIGSET_BYTES, 8);
            mask.set(JAVA_INT, offset(KVM_SIGNAL_MASK, "len"), Libc.KERNEL_SIGSET_BYTES);
            MemorySegment.copy(previous, 0, mask, KVM_SIGNAL_MASK.byteSize(), Libc.KERNEL_SIGSET_BYTES);
            KvmIoctl.call(fd(), KvmAbi.KVM_SET_SIGNAL_MASK, mask);
        }
        synchronized (kickLock) {
            runThread = Libc.pthreadSelf();
        }
    }

    /**
     * Called by the run thread when it stops running this vCPU: later kicks only set immediate_exit,
     * and a kick still pending is taken, because a thread that ends with one pending lets the
     * signal's default action (terminate) reach the process.
     */
    public void finishRunThread() {
        synchronized (kickLock) {
            runThread = 0;
        }
        while (Libc.sigtimedwaitNow(runCallState, kickSignalSet, zeroTimeout) > 0) {
            // took a pending kick
        }
    }

    /**
     * {@code int ioctl(vcpu_fd, KVM_RUN, 0)}: runs guest code until an exit.
     *
     * @return the exit reason ({@code EXIT_*}), or {@link #EXIT_INTERRUPTED} after a kick
     */
    public int run() {
        if (Libc.ioctlRaw(runCallState, fd(), KvmAbi.KVM_RUN, 0L) == 0) {
            return run.get(JAVA_INT, EXIT_REASON);
        }
        int errno = Libc.errno(runCallState);
        if (errno != Libc.EINTR && errno != Libc.EAGAIN) {
            throw new NativeCallException("ioctl(KVM_RUN) on vcpu " + id, errno);
        }
        // Clear immediate_exit before the caller rechecks why it was kicked (see kick()).
        BYTE.setVolatile(run, IMMEDIATE_EXIT, (byte) 0);
        while (Libc.sigtimedwaitNow(runCallState, kickSignalSet, zeroTimeout) > 0) {
            // drained one pending kick
        }
        return EXIT_INTERRUPTED;
    }

    /**
     * {@code int ioctl(vcpu_fd, KVM_RUN, 0)} with {@code immediate_exit} set: KVM finishes the
     * instruction of the last IO or MMIO exit (an IN's or a read's value into its register, RIP past
     * it) and returns at once without running guest code. Called before a vCPU parks after such an
     * exit, so its registers stand at an instruction boundary when they are saved.
     *
     * @return {@link #EXIT_INTERRUPTED}, or the exit reason when finishing the instruction needed
     *     another exit (a string IN that spans more than one exit), which the caller handles as usual
     */
    public int completePendingExit() {
        BYTE.setVolatile(run, IMMEDIATE_EXIT, (byte) 1);
        return run();
    }

    /**
     * Makes the vCPU's current or next KVM_RUN return {@link #EXIT_INTERRUPTED}. Callers set the
     * reason (pause, stop) in a volatile field before kicking, and the run thread checks it after
     * every interrupted run.
     */
    public void kick() {
        BYTE.setVolatile(run, IMMEDIATE_EXIT, (byte) 1);
        synchronized (kickLock) {
            if (runThread != 0) {
                Libc.pthreadKill(runThread, KICK_SIGNAL);
            }
        }
    }

    // ---- exit details, valid after run() returned the matching reason ----

    /** KVM_EXIT_IO: {@link #IO_IN} or out. */
    public int ioDirection() {
        return run.get(JAVA_BYTE, IO_DIRECTION);
    }

    /** KVM_EXIT_IO: bytes per access (1, 2 or 4). */
    public int ioSize() {
        return run.get(JAVA_BYTE, IO_SIZE);
    }

    public int ioPort() {
        return Short.toUnsignedInt(run.get(JAVA_SHORT, IO_PORT));
    }

    /** KVM_EXIT_IO: number of accesses (more than 1 for string instructions). */
    public int ioCount() {
        return run.get(JAVA_INT, IO_COUNT);
    }

    /** KVM_EXIT_IO: the value of access {@code i} of an OUT. */
    public int ioValue(int i) {
        long at = ioDataAt(i);
        return switch (ioSize()) {
            case 1 -> Byte.toUnsignedInt(run.get(JAVA_BYTE, at));
            case 2 -> Short.toUnsignedInt(run.get(JAVA_SHORT, at));
            default -> run.get(JAVA_INT, at);
        };
    }

    /** KVM_EXIT_IO: sets the value access {@code i} of an IN reads. */
    public void setIoValue(int i, int value) {
        long at = ioDataAt(i);
        switch (ioSize()) {
            case 1 -> run.set(JAVA_BYTE, at, (byte) value);
            case 2 -> run.set(JAVA_SHORT, at, (short) value);
            default -> run.set(JAVA_INT, at, value);
        }
    }

    private long ioDataAt(int i) {
        long at = run.get(JAVA_LONG, IO_DATA_OFFSET) + (long) i * ioSize();
        if (at < 0 || at + ioSize() > runSize) {
            throw new IllegalStateException("KVM_EXIT_IO data outside the kvm_run page: offset " + at);
        }
        return at;
    }

    public long mmioAddress() {
        return run.get(JAVA_LONG, MMIO_PHYS_ADDR);
    }

    /** KVM_EXIT_MMIO: access width in bytes (1 to 8). */
    public int mmioLength() {
        return run.get(JAVA_INT, MMIO_LEN);
    }

    public boolean mmioIsWrite() {
        return run.get(JAVA_BYTE, MMIO_IS_WRITE) != 0;
    }

    /** KVM_EXIT_MMIO: the written value, little-endian, {@link #mmioLength()} bytes. */
    public long mmioData() {
        long value = 0;
        int length = Math.min(mmioLength(), 8);
        for (int i = 0; i < length; i++) {
            value |= (run.get(JAVA_BYTE, MMIO_DATA + i) & 0xFFL) << (8 * i);
        }
        return value;
    }

    /** KVM_EXIT_MMIO: the value a read returns. */
    public void setMmioData(long value) {
        run.set(JAVA_LONG, MMIO_DATA, value);
    }

    public long failEntryReason() {
        return run.get(JAVA_LONG, FAIL_ENTRY_REASON);
    }

    public int internalErrorSuberror() {
        return run.get(JAVA_INT, INTERNAL_SUBERROR);
    }

    /** KVM_EXIT_INTERNAL_ERROR: the extra words KVM reported (for emulation failures, the instruction bytes among them). */
    public long[] internalErrorData() {
        int n = Math.min(Math.max(run.get(JAVA_INT, INTERNAL_NDATA), 0), 16);
        return run.asSlice(INTERNAL_DATA, 8L * n).toArray(JAVA_LONG);
    }

    public int systemEventType() {
        return run.get(JAVA_INT, SYSTEM_EVENT_TYPE);
    }

    @Override
    public void close() {
        synchronized (kickLock) {
            runThread = 0;
        }
        super.close();
        synchronized (arena) {
            if (arena.scope().isAlive()) {
                arena.close();
                Libc.munmap(runAddress, runSize);
            }
        }
    }
}
