package dev.panamax.vm;

import dev.panamax.kvm.CpuidEntry;
import dev.panamax.kvm.Kvm;
import dev.panamax.kvm.VmFd;
import dev.panamax.sys.MappedMemory;
import dev.panamax.sys.NativeHeap;
import dev.panamax.sys.SyscallProfile;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * A virtual machine: its KVM fd, guest memory, I/O buses and vCPUs, and its lifecycle
 * (created, running, paused, exited, closed). Thread-safe. Closing releases every fd, thread and
 * mapping it owns.
 */
public final class Vm implements AutoCloseable, Stateful {

    public enum State { CREATED, RUNNING, PAUSED, EXITED, CLOSED }

    /** How many {@linkplain #allocateMsiVector() MSI vectors} one VM's devices can have in all. */
    public static final int MAX_MSI_VECTORS = MsiRouting.MAX_MSI_VECTORS;

    /** The in-kernel interrupt controllers a snapshot holds, in its order, and their names for messages. */
    private static final int[] IRQCHIPS = {VmFd.IRQCHIP_PIC_MASTER, VmFd.IRQCHIP_PIC_SLAVE, VmFd.IRQCHIP_IOAPIC};
    private static final String[] IRQCHIP_NAMES = {"PIC master", "PIC slave", "IOAPIC"};

    /** What the vCPU threads are asked to do; read on every loop, so volatile and lock-free. */
    private enum Request { RUN, PAUSE, STOP }

    private final Kvm kvm;
    private final boolean ownsKvm;
    private final VmFd fd;
    private final GuestMemory memory = new GuestMemory();
    private final AddressBus<PortIoDevice> ports = new AddressBus<>("port I/O bus");
    private final AddressBus<MmioDevice> mmio = new AddressBus<>("MMIO bus");
    private final List<Vcpu> vcpus = new ArrayList<>();
    private final List<AutoCloseable> resources = new ArrayList<>();
    private final List<GuestMemory.Region> memorySlots = new ArrayList<>(); // the region in each KVM slot; guarded by lock
    private boolean dirtyTracking; // guarded by lock
    private boolean diffBaseLost; // the dirty log was taken by other than a snapshot; guarded by lock
    private MsiRouting msiRouting; // created with the first MSI vector; guarded by lock

    private final Object lock = new Object();
    private volatile Request request = Request.RUN;
    private State state = State.CREATED; // guarded by lock
    private int running; // vCPU threads not yet ended; guarded by lock
    private int paused; // vCPU threads parked by a pause; guarded by lock
    private VmExit exit; // the first exit; guarded by lock
    private VmExit lastHalt; // guarded by lock
    private long pausedClock; // the guest's kvmclock when it was paused; guarded by lock
    private boolean clockRestored; // pausedClock came from a snapshot, for startPaused; guarded by lock
    private boolean guestRan; // a vCPU was let into guest code (start or resume); guarded by lock
    private int[] msrsToSave; // the MSRs KVM_GET_MSRS reads on this VM, probed once; guarded by lock
    private volatile ThreadSandbox sandbox = ThreadSandbox.NONE;

    private Vm(Kvm kvm, boolean ownsKvm) {
        this.kvm = kvm;
        this.ownsKvm = ownsKvm;
        this.fd = kvm.createVm();
    }

    /** A new VM on its own {@code /dev/kvm} fd. */
    public static Vm create() {
        Kvm kvm = Kvm.open();
        try {
            return new Vm(kvm, true);
        } catch (RuntimeException e) {
            kvm.close();
            throw e;
        }
    }

    /** A new VM on a shared {@code /dev/kvm} fd, which stays open when the VM closes. */
    public static Vm create(Kvm kvm) {
        return new Vm(kvm, false);
    }

    public Kvm kvm() {
        return kvm;
    }

    /**
     * Turns seccomp filters on for this VM's threads, before it starts: each vCPU confines itself
     * to {@link SyscallProfile#VCPU}, each device given {@link #sandbox()} its I/O threads to their
     * profiles, and a forbidden call by any of them ends the VM with {@link
     * VmExit.Reason#SECCOMP_VIOLATION}.
     */
    public void enableSeccomp() {
        synchronized (lock) {
            requireState(State.CREATED, "turn seccomp on for");
            sandbox = ThreadSandbox.reportingTo(v -> requestExit(
                    new VmExit(VmExit.Reason.SECCOMP_VIOLATION, -1, v.message(), null)));
        }
    }

    /** Whether this VM's threads confine themselves ({@link #enableSeccomp}), and whom they report to: for its devices. */
    public ThreadSandbox sandbox() {
        return sandbox;
    }

    /** The KVM VM fd, for interrupt controllers and event fds. */
    public VmFd fd() {
        return fd;
    }

    public GuestMemory memory() {
        return memory;
    }

    public AddressBus<PortIoDevice> ports() {
        return ports;
    }

    public AddressBus<MmioDevice> mmio() {
        return mmio;
    }

    /**
     * Adds {@code size} bytes of RAM at guest-physical {@code guestAddress}, registered with KVM.
     *
     * @param memfd back it with a memfd (shareable, for snapshots) instead of anonymous memory
     */
    public GuestMemory.Region addMemory(long guestAddress, long size, boolean memfd) {
        synchronized (lock) {
            requireNotClosed();
            return addMemory(guestAddress, memfd ? MappedMemory.memfd("panamax-ram", size) : MappedMemory.anonymous(size));
        }
    }

    /**
     * Adds {@code backing} as RAM at guest-physical {@code guestAddress}, registered with KVM: for a
     * restore, a {@linkplain MappedMemory#mapFile mapping of a memory file}. The VM owns {@code
     * backing} from this call on, and closes it also when the call fails.
     */
    public GuestMemory.Region addMemory(long guestAddress, MappedMemory backing) {
        synchronized (lock) {
            try {
                requireNotClosed();
                GuestMemory.Region region = memory.addRegion(guestAddress, backing); // checks alignment and overlaps
                try {
                    fd.setUserMemoryRegion(memorySlots.size(), dirtyTracking, guestAddress, backing.size(), backing.address());
                } catch (RuntimeException e) {
                    memory.removeRegion(region);
                    throw e;
                }
                memorySlots.add(region);
                return region;
            } catch (RuntimeException e) {
                backing.close();
                throw e;
            }
        }
    }

    /**
     * Starts tracking the pages of guest memory written from now on, for diff snapshots: KVM logs
     * the guest's writes ({@code KVM_MEM_LOG_DIRTY_PAGES} on every slot) and {@link GuestMemory}
     * marks the writes of Panamax's own devices. Memory added later is tracked too. Idempotent.
     */
    public void startDirtyTracking() {
        synchronized (lock) {
            requireNotClosed();
            if (dirtyTracking) {
                return;
            }
            memory.startTracking(); // before KVM's log, so no write falls between the two
            for (int slot = 0; slot < memorySlots.size(); slot++) {
                GuestMemory.Region r = memorySlots.get(slot);
                fd.setUserMemoryRegion(slot, true, r.guestAddress(), r.size(), r.backing().address());
            }
            dirtyTracking = true;
        }
    }

    /**
     * Marks that someone other than a snapshot (a live migration's pre-copy) takes the dirty pages
     * from now on, so that a diff snapshot would miss the pages they took: the next snapshot must be
     * a full one, which {@link #diffBaseRestored()} says was written.
     */
    public void loseDiffBase() {
        synchronized (lock) {
            diffBaseLost = true;
        }
    }

    /** Whether the pages written since the last snapshot are all still in the dirty log (see {@link #loseDiffBase()}). */
    public boolean hasDiffBase() {
        synchronized (lock) {
            return !diffBaseLost;
        }
    }

    /** A full snapshot was written: the base of the next diff. */
    public void diffBaseRestored() {
        synchronized (lock) {
            diffBaseLost = false;
        }
    }

    /** Whether {@link #startDirtyTracking()} was called. */
    public boolean tracksDirtyPages() {
        synchronized (lock) {
            return dirtyTracking;
        }
    }

    /**
     * The pages of guest memory written since {@link #startDirtyTracking()} or the last take, by the
     * guest (KVM's dirty log, {@code KVM_GET_DIRTY_LOG} per slot) or by Panamax's devices, one
     * bitmap per region; tracking starts over from here. For a diff snapshot, take them with the
     * vCPUs paused and the devices quiesced; to make a full snapshot the base of the next diff,
     * take (and drop) them when writing it.
     *
     * @throws IllegalStateException when tracking was not started
     */
    public DirtyPages takeDirtyPages() {
        synchronized (lock) {
            requireNotClosed();
            if (!dirtyTracking) {
                throw new IllegalStateException("dirty page tracking was not started on this VM");
            }
            DirtyPages pages = memory.takeWrittenPages();
            for (int slot = 0; slot < memorySlots.size(); slot++) {
                GuestMemory.Region r = memorySlots.get(slot);
                pages.add(r.guestAddress(), fd.dirtyLog(slot, r.size()));
            }
            return pages;
        }
    }

    /** The CPUID vCPU 0 reports to the guest, which a live migration's destination checks against its own KVM. */
    public List<CpuidEntry> guestCpuid() {
        synchronized (lock) {
            requireNotClosed();
            if (vcpus.isEmpty()) {
                throw new IllegalStateException("the VM has no vCPU");
            }
            return vcpus.getFirst().fd().cpuidSet(); // KVM_GET_CPUID2 would wait for a running vCPU to leave KVM_RUN
        }
    }

    /**
     * The interrupt line for {@code gsi} on the in-kernel PIC and IOAPIC (ISA IRQs 0-15 are GSIs
     * 0-15). Needs the irqchip ({@code fd().createIrqchip()}).
     */
    public InterruptLine interruptLine(int gsi) {
        if (gsi < 0 || gsi > 23) {
            throw new IllegalArgumentException("no IOAPIC pin for GSI " + gsi);
        }
        return asserted -> fd.setIrqLine(gsi, asserted);
    }

    /**
     * A new message-signalled interrupt, delivered by KVM through GSI routing and irqfd. Needs the
     * irqchip. The caller closes it, or lets the VM close it through {@link #closeOnExit}.
     */
    public MsiVector allocateMsiVector() {
        MsiRouting routing;
        synchronized (lock) {
            requireNotClosed();
            if (msiRouting == null) {
                msiRouting = new MsiRouting(fd);
            }
            routing = msiRouting;
        }
        return routing.allocate();
    }

    /** Adds a vCPU (ids count from 0); only before {@link #start()}. */
    public Vcpu addVcpu() {
        synchronized (lock) {
            requireState(State.CREATED, "add a vCPU");
            Vcpu vcpu = new Vcpu(this, fd.createVcpu(vcpus.size()));
            vcpus.add(vcpu);
            return vcpu;
        }
    }

    /** Exits from guest code (returns from {@code KVM_RUN}) so far, summed over the vCPUs. */
    public long vcpuExits() {
        long sum = 0;
        for (Vcpu vcpu : vcpus()) {
            sum += vcpu.exits();
        }
        return sum;
    }

    /** Exits of {@code kind} of all vCPUs so far. */
    public long vcpuExits(Vcpu.ExitKind kind) {
        long sum = 0;
        for (Vcpu vcpu : vcpus()) {
            sum += vcpu.exits(kind);
        }
        return sum;
    }

    public List<Vcpu> vcpus() {
        synchronized (lock) {
            return List.copyOf(vcpus);
        }
    }

    /** Closes {@code resource} when the VM closes, after its vCPUs have stopped (for device threads and fds). */
    public void closeOnExit(AutoCloseable resource) {
        synchronized (lock) {
            requireNotClosed();
            resources.add(resource);
        }
    }

    public State state() {
        synchronized (lock) {
            return state;
        }
    }

    /** The exit, once the VM has exited. */
    public Optional<VmExit> exit() {
        synchronized (lock) {
            return Optional.ofNullable(exit);
        }
    }

    /** Starts one thread per vCPU running guest code. */
    public void start() {
        synchronized (lock) {
            requireState(State.CREATED, "start");
            if (vcpus.isEmpty()) {
                throw new IllegalStateException("cannot start a VM without vCPUs");
            }
            state = State.RUNNING;
            guestRan = true;
            running = vcpus.size();
            for (Vcpu vcpu : vcpus) {
                vcpu.start();
            }
        }
    }

    /**
     * Starts one thread per vCPU, parked: the VM is {@link State#PAUSED} when this returns, and
     * {@link #resume()} lets the guest run, its clock going on from the value a {@link
     * #restoreState} gave, else from the clock now.
     */
    public void startPaused() {
        synchronized (lock) {
            requireState(State.CREATED, "start");
            if (vcpus.isEmpty()) {
                throw new IllegalStateException("cannot start a VM without vCPUs");
            }
            request = Request.PAUSE;
            state = State.RUNNING;
            running = vcpus.size();
            for (Vcpu vcpu : vcpus) {
                vcpu.start();
            }
            while (paused < running && request == Request.PAUSE) {
                waitOnLock();
            }
            if (request == Request.PAUSE) {
                if (!clockRestored) {
                    pausedClock = fd.getClock();
                }
                state = State.PAUSED;
            }
        }
    }

    /** Stops every vCPU outside guest code and the guest's clock, and returns once all are parked. */
    public void pause() {
        synchronized (lock) {
            if (state == State.PAUSED) {
                return;
            }
            requireState(State.RUNNING, "pause");
            request = Request.PAUSE;
        }
        kickAll();
        synchronized (lock) {
            while (paused < running && request == Request.PAUSE) {
                waitOnLock();
            }
            if (request == Request.PAUSE) {
                // The guest's clock stops with its vCPUs (as in QEMU and Cloud Hypervisor); else its
                // time would jump ahead by the length of the pause when it resumes.
                pausedClock = fd.getClock();
                state = State.PAUSED;
            }
        }
    }

    /** Lets the vCPUs of a paused VM run again, the guest's clock going on from where it stood. */
    public void resume() {
        synchronized (lock) {
            requireState(State.PAUSED, "resume");
            fd.setClock(pausedClock);
            guestRan = true;
            request = Request.RUN;
            state = State.RUNNING;
            lock.notifyAll();
        }
    }

    /**
     * Ends the VM from outside: vCPUs are pulled out of guest code, and the exit is {@link
     * VmExit.Reason#STOPPED} unless the guest already exited. Returns once every vCPU thread ended.
     */
    public void stop() {
        requestExit(new VmExit(VmExit.Reason.STOPPED, -1, "stopped by the host", null));
        if (vcpus().stream().noneMatch(v -> v.thread() == Thread.currentThread())) {
            awaitExit(null);
        }
    }

    /**
     * Ends the VM with {@code reason} unless it already has an exit: for devices (a reset or
     * power-off request) and for the host. Does not wait, so a device may call it from a vCPU thread.
     */
    public void requestExit(VmExit reason) {
        synchronized (lock) {
            if (exit == null && state != State.CLOSED) {
                exit = reason;
            }
            request = Request.STOP;
            if (state == State.CREATED) {
                state = State.EXITED;
            }
            lock.notifyAll();
        }
        kickAll();
    }

    /**
     * Waits for the VM to exit.
     *
     * @param timeout how long to wait, or null for ever
     * @return the exit, or empty on timeout
     */
    public Optional<VmExit> awaitExit(Duration timeout) {
        long deadline = timeout == null ? Long.MAX_VALUE : System.nanoTime() + timeout.toNanos();
        synchronized (lock) {
            while (state != State.EXITED && state != State.CLOSED) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return Optional.empty();
                }
                try {
                    if (timeout == null) {
                        lock.wait();
                    } else {
                        lock.wait(Math.max(1, left / 1_000_000));
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return Optional.empty();
                }
            }
            return Optional.ofNullable(exit);
        }
    }

    /** Whether the vCPUs are asked to run (not to pause or stop); a vCPU thread's check before it parks. */
    boolean runRequested() {
        return request == Request.RUN;
    }

    // ---- saved state ----

    /**
     * Writes the VM's KVM state, which a paused VM holds still: the vCPU count, each vCPU's
     * complete state in a section {@code vcpu/N}, then the sections {@code irqchip} (PIC master, PIC
     * slave, IOAPIC), {@code pit}, {@code clock} (the guest's kvmclock, stopped since the pause)
     * and {@code tsc-khz}. Guest memory and devices are saved apart.
     *
     * @throws IllegalStateException unless the VM is paused
     */
    @Override
    public void saveState(StateWriter out) {
        synchronized (lock) { // holds off resume() until the state is whole
            requireState(State.PAUSED, "save the state of");
            int[] msrs = msrsToSave();
            int xsaveSize = fd.xsaveSize();
            out.i32(vcpus.size());
            for (Vcpu vcpu : vcpus) {
                out.section("vcpu/" + vcpu.index(), w -> vcpu.saveState(w, msrs, xsaveSize));
            }
            out.section("irqchip", w -> {
                for (int chip : IRQCHIPS) {
                    w.bytes(fd.getIrqchip(chip));
                }
            });
            out.section("pit", w -> w.bytes(fd.getPit2()));
            out.section("clock", w -> w.i64(pausedClock));
            out.section("tsc-khz", w -> w.i32(vcpus.getFirst().fd().getTscKhz()));
        }
    }

    /**
     * Takes the state {@link #saveState} wrote into this VM, which must not have run guest code (not
     * started, or {@linkplain #startPaused started paused} and not resumed since: a migration's
     * destination starts its vCPU threads before the state comes) and must have the in-kernel
     * irqchip and PIT ({@code fd().createIrqchip()}, {@code fd().createPit2()}),
     * its memory, and as many vCPUs as the snapshot. Every value is read and checked before any is
     * applied; then the irqchip, PIT and each vCPU's state are set, and the saved clock becomes the
     * one {@link #resume()} sets after {@link #startPaused()}.
     *
     * @throws StateFormatException when a value is malformed or does not fit this VM or host, or KVM
     *     refuses it; the VM must then be closed, not started
     */
    @Override
    public void restoreState(StateReader in) {
        synchronized (lock) {
            if (state != State.CREATED && (state != State.PAUSED || guestRan)) {
                throw new IllegalStateException(state == State.PAUSED ? "cannot restore a state into a VM whose guest has run"
                        : "cannot restore a state into a VM that is " + state.name().toLowerCase());
            }
            int count = in.i32("vCPU count");
            if (count != vcpus.size()) {
                throw in.fail("the snapshot has " + Integer.toUnsignedString(count) + " vCPUs, and this VM has " + vcpus.size()
                        + ": restore it into a VM with " + Integer.toUnsignedString(count));
            }
            int xsaveSize = fd.xsaveSize();
            Set<Integer> knownMsrs = new HashSet<>();
            for (int msr : kvm.msrIndexList()) {
                knownMsrs.add(msr);
            }
            List<Vcpu.SavedState> saved = new ArrayList<>(count);
            for (Vcpu vcpu : vcpus) {
                in.section("vcpu/" + vcpu.index(), r -> saved.add(Vcpu.readState(r, xsaveSize, knownMsrs)));
            }
            byte[][] irqchips = new byte[IRQCHIPS.length][];
            in.section("irqchip", r -> {
                for (int i = 0; i < IRQCHIPS.length; i++) {
                    irqchips[i] = r.bytesOfSize(VmFd.IRQCHIP_STATE_SIZE, IRQCHIP_NAMES[i] + " state (struct kvm_irqchip's chip)");
                }
            });
            byte[][] pit = new byte[1][];
            in.section("pit", r -> pit[0] = r.bytesOfSize(VmFd.PIT_STATE_SIZE, "PIT state (struct kvm_pit_state2)"));
            long[] clock = new long[1];
            in.section("clock", r -> clock[0] = r.i64("kvmclock"));
            int[] tscKhz = new int[1];
            in.section("tsc-khz", r -> tscKhz[0] = r.i32In(1, Integer.MAX_VALUE, "TSC frequency in kHz"));

            // Everything read and checked: apply, the VM-wide chips first as Firecracker does.
            for (int i = 0; i < IRQCHIPS.length; i++) {
                int chip = i;
                applyVmState(in, IRQCHIP_NAMES[i] + " state", () -> fd.setIrqchip(IRQCHIPS[chip], irqchips[chip]));
            }
            applyVmState(in, "PIT state", () -> fd.setPit2(pit[0]));
            applyVmState(in, "kvmclock", () -> fd.setClock(clock[0]));
            for (int i = 0; i < count; i++) {
                vcpus.get(i).applyState(saved.get(i), tscKhz[0], in);
            }
            pausedClock = clock[0];
            clockRestored = true;
        }
    }

    private static void applyVmState(StateReader in, String what, Runnable step) {
        try {
            step.run();
        } catch (RuntimeException e) {
            throw in.fail("KVM refused the " + what + " (does the VM have its in-kernel irqchip and PIT?): " + e.getMessage());
        }
    }

    /** The MSRs of {@link Kvm#msrIndexList()} that KVM_GET_MSRS reads on this VM, probed once on vCPU 0. */
    private int[] msrsToSave() {
        if (msrsToSave == null) {
            msrsToSave = vcpus.getFirst().fd().readableMsrs(kvm.msrIndexList());
        }
        return msrsToSave;
    }

    /** Called by a vCPU thread between runs: parks it while paused; false once the VM is stopping. */
    boolean awaitRunnable(Vcpu vcpu) {
        if (request == Request.RUN) {
            return true;
        }
        synchronized (lock) {
            if (request == Request.PAUSE) {
                paused++;
                lock.notifyAll();
                while (request == Request.PAUSE) {
                    waitOnLock();
                }
                paused--;
            }
            return request == Request.RUN;
        }
    }

    /** Called once by each vCPU thread as it ends, with its exit, or null when it was stopped. */
    void vcpuEnded(Vcpu vcpu, VmExit vcpuExit) {
        boolean stopOthers = false;
        synchronized (lock) {
            running--;
            if (vcpuExit != null && vcpuExit.reason() == VmExit.Reason.HALTED) {
                lastHalt = vcpuExit; // a bare program's vCPU is done; the VM ends with the last one
            } else if (vcpuExit != null && exit == null) {
                exit = vcpuExit;
                request = Request.STOP;
                stopOthers = true;
            }
            if (running == 0) {
                if (exit == null) {
                    exit = lastHalt;
                }
                state = State.EXITED;
            }
            lock.notifyAll();
        }
        if (stopOthers) {
            kickAll();
        }
    }

    private void kickAll() {
        for (Vcpu vcpu : vcpus()) {
            vcpu.kick();
        }
    }

    private void waitOnLock() {
        try {
            lock.wait();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the vCPUs", e);
        }
    }

    private void requireState(State wanted, String action) {
        if (state != wanted) {
            throw new IllegalStateException("cannot " + action + " a VM that is " + state.name().toLowerCase());
        }
    }

    private void requireNotClosed() {
        if (state == State.CLOSED) {
            throw new IllegalStateException("the VM is closed");
        }
    }

    /** Stops the VM if it runs, then releases its threads, devices, fds and memory. Idempotent. */
    @Override
    public void close() {
        State before = state();
        if (before == State.CLOSED) {
            return;
        }
        if (before == State.RUNNING || before == State.PAUSED) {
            stop();
        }
        for (Vcpu vcpu : vcpus()) {
            Thread t = vcpu.thread();
            if (t != null) {
                try {
                    t.join(Duration.ofSeconds(10));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
        List<AutoCloseable> toClose;
        synchronized (lock) {
            state = State.CLOSED;
            lock.notifyAll();
            toClose = new ArrayList<>(resources);
        }
        RuntimeException failure = null;
        for (AutoCloseable r : toClose.reversed()) {
            try {
                r.close();
            } catch (Exception e) {
                failure = failure == null ? new IllegalStateException("closing the VM failed", e) : failure;
            }
        }
        for (Vcpu vcpu : vcpus) {
            vcpu.fd().close();
        }
        fd.close();
        memory.close();
        if (ownsKvm) {
            kvm.close();
        }
        // The VM's threads freed their native buffers, but the C library keeps the pages of the arenas
        // they used; a JVM that runs VM after VM would hold its busiest moment's pages for good.
        NativeHeap.trim();
        if (failure != null) {
            throw failure;
        }
    }
}
