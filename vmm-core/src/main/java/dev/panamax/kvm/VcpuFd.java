package dev.panamax.kvm;

import static dev.panamax.kvm.KvmAbi.KVM_FPU;
import static dev.panamax.kvm.KvmAbi.KVM_LAPIC_STATE;
import static dev.panamax.kvm.KvmAbi.KVM_MSRS;
import static dev.panamax.kvm.KvmAbi.KVM_MSR_ENTRY;
import static dev.panamax.kvm.KvmAbi.KVM_REGS;
import static dev.panamax.kvm.KvmAbi.KVM_RUN_STRUCT;
import static dev.panamax.kvm.KvmAbi.KVM_SIGNAL_MASK;
import static dev.panamax.kvm.KvmAbi.KVM_SREGS;
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

    /** {@code int ioctl(vcpu_fd, KVM_SET_FPU, struct kvm_fpu *)} */
    public void setFpu(Fpu fpu) {
        set(KVM_FPU, KvmAbi.KVM_SET_FPU, fpu::writeTo);
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
