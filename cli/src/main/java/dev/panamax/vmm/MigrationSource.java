package dev.panamax.vmm;

import dev.panamax.kvm.CpuidEntry;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.vm.DirtyPages;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.MemoryMap;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import dev.panamax.vm.state.StateFile;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The sending side of a live migration: iterative pre-copy of guest memory while the guest runs,
 * then a short stop for the last dirty pages and the state, then the commit. Until the commit the
 * guest belongs to this process: any failure before it (a broken connection, a refusal, a cancel)
 * takes the disks back and lets the guest run on here. After the commit it belongs to the
 * destination, and this VM ends with {@link VmExit.Reason#MIGRATED}.
 *
 * <p>The steps and their messages are in {@code docs/migration-protocol.md}.
 */
public final class MigrationSource {
    /** Where the source says how far it is; read by the API while a migration runs. */
    public enum Phase {
        CONNECTING, CONFIGURING, COPYING_MEMORY, STOPPED_COPYING, HANDING_OVER, COMPLETED, FAILED, CANCELLED,
        /** The commit was sent and its answer lost: the guest may run at the destination, and stays paused here. */
        COMMIT_UNCONFIRMED
    }

    /**
     * @param destination where the destination listens
     * @param downtimeTarget the guest's longest pause the pre-copy aims for
     * @param maxRounds the most rounds of dirty pages after the first copy; then the guest stops whatever is left
     * @param refuseLongerDowntime at the round limit, give up (the guest runs on here) rather than stop the guest longer than the target
     * @param timeout the longest the destination may take to answer one step
     */
    public record Options(MigrationAddress destination, Duration downtimeTarget, int maxRounds, boolean refuseLongerDowntime,
            Duration timeout) {
        public static final Duration DEFAULT_DOWNTIME = Duration.ofMillis(300);
        public static final int DEFAULT_MAX_ROUNDS = 30;
        public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);

        public Options {
            Objects.requireNonNull(destination, "destination");
            if (downtimeTarget.isNegative() || downtimeTarget.isZero()) {
                throw new IllegalArgumentException("the downtime target must be positive, not " + downtimeTarget.toMillis() + " ms");
            }
            if (maxRounds < 0 || maxRounds > 10_000) {
                throw new IllegalArgumentException("the round limit must be 0 to 10000, not " + maxRounds);
            }
            if (timeout.isNegative() || timeout.isZero()) {
                throw new IllegalArgumentException("the timeout must be positive");
            }
        }

        public static Options to(MigrationAddress destination) {
            return new Options(destination, DEFAULT_DOWNTIME, DEFAULT_MAX_ROUNDS, false, DEFAULT_TIMEOUT);
        }
    }

    /**
     * How far a migration is.
     *
     * @param round the round of memory being sent: 0 is the first copy of all of it
     * @param bytesSent everything sent so far, memory and state
     * @param lastRoundPages the pages the last finished round sent
     * @param dirtyPagesPerSecond how fast the guest dirtied pages during the last round
     * @param bandwidthBytesPerSecond how fast the last round went
     * @param expectedDowntimeMillis what stopping the guest now would cost, at that bandwidth
     * @param downtimeMillis how long the guest stood still, once it is over; else 0
     * @param totalMillis from the start until now, or until the end
     * @param error why it failed or was cancelled, and where the guest runs; else null
     */
    public record Progress(Phase phase, int round, long bytesSent, long lastRoundPages, long dirtyPagesPerSecond,
            long bandwidthBytesPerSecond, long expectedDowntimeMillis, long downtimeMillis, long totalMillis, String error) {}

    private static final long PAGE = DirtyPages.PAGE_SIZE;
    private static final int RUN_DATA = 0;
    private static final int RUN_ZERO = 1;
    private static final int RUN_HEADER = 16;
    /** How long a failed migration tries to take the disks back from a destination that is still letting go of them. */
    private static final Duration DISK_TAKE_BACK = Duration.ofSeconds(10);
    private static final MemorySegment ZERO_PAGE = MemorySegment.ofArray(new byte[(int) PAGE]);

    private static final System.Logger LOG = System.getLogger(MigrationSource.class.getName());

    private final VmBuilder.Machine machine;
    private final Options options;
    private final long started = System.nanoTime();
    private volatile Progress progress;
    private volatile boolean cancelled;
    private volatile MigrationWire wire;
    private final List<Stateful> quiesced = new ArrayList<>(); // the devices the stop quiesced
    private final List<VirtioBlk> released = new ArrayList<>(); // the drives handed over
    private Runs runs; // the MEMORY message being filled, its buffer kept from round to round

    public MigrationSource(VmBuilder.Machine machine, Options options) {
        this.machine = Objects.requireNonNull(machine, "machine");
        this.options = Objects.requireNonNull(options, "options");
        this.progress = new Progress(Phase.CONNECTING, 0, 0, 0, 0, 0, 0, 0, 0, null);
    }

    public Progress progress() {
        Progress p = progress;
        boolean over = p.phase() == Phase.COMPLETED || p.phase() == Phase.FAILED || p.phase() == Phase.CANCELLED
                || p.phase() == Phase.COMMIT_UNCONFIRMED;
        return over ? p : new Progress(p.phase(), p.round(), p.bytesSent(), p.lastRoundPages(), p.dirtyPagesPerSecond(),
                p.bandwidthBytesPerSecond(), p.expectedDowntimeMillis(), 0, millisSince(started), null);
    }

    /**
     * Asks the migration to stop before its commit: the guest goes on running here. Too late once
     * the commit is sent; then the migration completes.
     */
    public void cancel() {
        cancelled = true;
    }

    /**
     * Migrates the VM, which runs or is paused; blocks until it is over.
     *
     * @return the figures of the completed migration
     * @throws MigrationException when it failed or was cancelled; the message says why and where the
     *     guest is (running here as before, except when the commit's answer was lost, which it says)
     * @throws IllegalStateException when the VM cannot be migrated (a shared folder, huge pages, not running)
     */
    public Progress run() throws MigrationException {
        Vm vm = machine.vm();
        VmSnapshot.requireSavable(machine);
        Vm.State before = vm.state();
        if (before != Vm.State.RUNNING && before != Vm.State.PAUSED) {
            throw new IllegalStateException("a VM that is " + before.name().toLowerCase() + " cannot be migrated");
        }
        boolean wasRunning = before == Vm.State.RUNNING;
        boolean committed = false;
        long downtimeStart = 0;
        MigrationWire w = null;
        try {
            w = new MigrationWire(options.destination().connect(options.timeout()), "the destination at " + options.destination());
            wire = w;
            hello(w);
            set(Phase.CONFIGURING, 0, 0, 0, 0, 0);
            configure(w);
            vm.startDirtyTracking();
            vm.loseDiffBase(); // the rounds take the dirty log a diff snapshot would need
            vm.takeDirtyPages(); // the first round copies everything; it counts from here
            set(Phase.COPYING_MEMORY, 0, 0, 0, 0, 0);
            long roundStart = System.nanoTime();
            long bytesBefore = w.bytesSent();
            long pages = sendPages(w, null);
            endRound(w, 0, pages);
            DirtyPages pending = null;
            for (int round = 1; ; round++) {
                checkCancelled();
                long nanos = Math.max(1, System.nanoTime() - roundStart);
                long bandwidth = (w.bytesSent() - bytesBefore) * 1_000_000_000L / nanos;
                DirtyPages dirty = vm.takeDirtyPages();
                long dirtyRate = dirty.count() * 1_000_000_000L / nanos;
                long expected = bandwidth == 0 ? Long.MAX_VALUE : dirty.count() * PAGE * 1000 / bandwidth;
                set(Phase.COPYING_MEMORY, round, pages, dirtyRate, bandwidth, expected);
                if (expected <= options.downtimeTarget().toMillis()) {
                    pending = dirty;
                    break;
                }
                if (round > options.maxRounds()) {
                    if (options.refuseLongerDowntime()) {
                        throw new MigrationException("the guest dirties memory faster than the connection carries it: after "
                                + options.maxRounds() + " rounds stopping it would take about " + expected + " ms, over the target of "
                                + options.downtimeTarget().toMillis() + " ms, and a longer stop was refused");
                    }
                    pending = dirty;
                    break;
                }
                roundStart = System.nanoTime();
                bytesBefore = w.bytesSent();
                pages = sendPages(w, dirty);
                endRound(w, round, pages);
            }
            checkCancelled();

            // Stop the guest: the rest of memory and the state go while nothing changes them.
            downtimeStart = System.nanoTime();
            StopTimes stop = new StopTimes(downtimeStart);
            if (wasRunning) {
                vm.pause();
            }
            VmSnapshot.quiesce(machine, quiesced);
            stop.mark("pausing");
            set(Phase.STOPPED_COPYING, progress.round(), progress.lastRoundPages(), progress.dirtyPagesPerSecond(),
                    progress.bandwidthBytesPerSecond(), progress.expectedDowntimeMillis());
            DirtyPages last = vm.takeDirtyPages();
            long lastPages = sendPages(w, pending == null ? last : pending.or(last));
            int lastRound = progress.round() + 1;
            // Not waited for here: the destination takes these pages while the disks go and the
            // state is saved; its answer is read before the state's.
            sendRoundEnd(w, lastRound, lastPages);
            stop.mark("the last " + lastPages + " pages");
            for (VirtioBlk drive : drives()) {
                try {
                    drive.releaseDisk();
                } catch (IOException e) {
                    throw new MigrationException("cannot hand drive " + drive.image() + " over: " + e.getMessage(), e);
                }
                released.add(drive);
            }
            set(Phase.HANDING_OVER, progress.round(), lastPages, progress.dirtyPagesPerSecond(), progress.bandwidthBytesPerSecond(),
                    progress.expectedDowntimeMillis());
            stop.mark("releasing the disks");
            StateWriter state = new StateWriter();
            VmSnapshot.saveStates(state, machine);
            stop.mark("saving the state");
            w.send(MigrationWire.Type.STATE, state.toByteArray());
            w.expect(MigrationWire.Type.ACK, options.timeout(), "the destination to take round " + lastRound + " of memory");
            w.expect(MigrationWire.Type.ACK, options.timeout(), "the destination to take the VM's state and disks");
            stop.mark("the destination taking it");
            checkCancelled();
            committed = true;
            try {
                w.send(MigrationWire.Type.GO, new byte[] {(byte) (wasRunning ? 1 : 0)}); // a failed write may still have reached it
                w.expect(MigrationWire.Type.ACK, options.timeout(), "the destination to start the guest");
            } catch (MigrationException e) {
                String message = "the commit was sent, and the destination's answer was lost (" + e.getMessage() + "): the guest may"
                        + " run there now; it stays paused here, its disks released. Resume it here only after making sure the"
                        + " destination does not run it";
                Progress p = progress;
                progress = new Progress(Phase.COMMIT_UNCONFIRMED, p.round(), w.bytesSent(), p.lastRoundPages(), p.dirtyPagesPerSecond(),
                        p.bandwidthBytesPerSecond(), p.expectedDowntimeMillis(), 0, millisSince(started), message);
                throw new MigrationException(message, e);
            }
            long downtime = millisSince(downtimeStart);
            stop.mark("the commit");
            LOG.log(System.Logger.Level.INFO, "migration: the guest stood still for " + downtime + " ms: " + stop);
            Progress p = progress;
            progress = new Progress(Phase.COMPLETED, p.round(), w.bytesSent(), p.lastRoundPages(), p.dirtyPagesPerSecond(),
                    p.bandwidthBytesPerSecond(), p.expectedDowntimeMillis(), downtime, millisSince(started), null);
            // Completed before the exit: whoever sees the VM end (a run closing its API) sees how the migration ended.
            vm.requestExit(new VmExit(VmExit.Reason.MIGRATED, -1, "to " + options.destination(), null));
            return progress;
        } catch (MigrationException | RuntimeException e) {
            if (committed) {
                throw e;
            }
            String why = e.getMessage() == null ? e.toString() : e.getMessage();
            if (w != null) {
                w.sendErrorQuietly(MigrationWire.Type.CANCEL, why); // first: the destination lets go of the disks at once
            }
            String where = giveBack(wasRunning);
            Progress p = progress;
            String message = why + where;
            progress = new Progress(cancelled ? Phase.CANCELLED : Phase.FAILED, p.round(), w == null ? 0 : w.bytesSent(),
                    p.lastRoundPages(), p.dirtyPagesPerSecond(), p.bandwidthBytesPerSecond(), p.expectedDowntimeMillis(),
                    0, millisSince(started), message);
            throw new MigrationException(message, e);
        } finally {
            if (w != null) {
                w.close();
            }
        }
    }

    /**
     * After a commit whose answer was lost ({@link Phase#COMMIT_UNCONFIRMED}), lets the guest run
     * here again, for a caller who has made sure the destination does not run it: the disks are
     * taken back (which fails while the destination holds them), the devices work again and the
     * vCPUs run.
     *
     * @throws MigrationException when the migration is not in that state, or a disk is still held elsewhere
     */
    public void resumeHere() throws MigrationException {
        if (progress.phase() != Phase.COMMIT_UNCONFIRMED) {
            throw new MigrationException("the guest is not left paused by a migration whose commit went unanswered");
        }
        String where = giveBack(true);
        if (machine.vm().state() != Vm.State.RUNNING) {
            throw new MigrationException("the guest cannot run here again" + where);
        }
        Progress p = progress;
        progress = new Progress(Phase.FAILED, p.round(), p.bytesSent(), p.lastRoundPages(), p.dirtyPagesPerSecond(),
                p.bandwidthBytesPerSecond(), p.expectedDowntimeMillis(), 0, p.totalMillis(), p.error() + "; resumed here since");
    }

    /** The guest back as it was: disks locked again, devices working, vCPUs running if they were. Says where the guest is. */
    private String giveBack(boolean wasRunning) {
        long deadline = System.nanoTime() + DISK_TAKE_BACK.toNanos();
        for (VirtioBlk drive : released) {
            try {
                while (!drive.takeDiskBack()) {
                    if (System.nanoTime() > deadline) {
                        return "; drive " + drive.image() + " is still held by another process (the destination?), so the guest stays paused"
                                + " here: resume it once the destination has exited";
                    }
                    Thread.sleep(50);
                }
            } catch (IOException e) {
                return "; drive " + drive.image() + "'s lock cannot be taken back (" + e.getMessage() + "), so the guest stays paused here";
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return "; interrupted while taking drive " + drive.image() + " back, so the guest stays paused here";
            }
        }
        released.clear();
        VmSnapshot.resumeWork(quiesced);
        Vm vm = machine.vm();
        if (wasRunning && vm.state() == Vm.State.PAUSED) {
            vm.resume();
        }
        return wasRunning ? "; the guest runs on here" : "; the guest stays here, paused as it was";
    }

    private void checkCancelled() throws MigrationException {
        if (cancelled) {
            throw new MigrationException("the migration was cancelled");
        }
    }

    private void hello(MigrationWire w) throws MigrationException {
        w.send(MigrationWire.Type.HELLO, MigrationWire.hello(MigrationWire.VERSION, StateFile.VERSION));
        w.expect(MigrationWire.Type.ACK, options.timeout(), "the destination's answer to the protocol version");
    }

    /** The machine's configuration (as a snapshot saves it), its memory map and vCPU 0's CPUID; the destination checks all. */
    private void configure(MigrationWire w) throws MigrationException {
        StateWriter config = new StateWriter();
        config.section("machine", out -> VmSnapshot.writeMachine(out, machine, VmSnapshot.Kind.FULL, ""));
        config.section("memory", out -> MemoryMap.of(machine.vm().memory()).saveState(out));
        List<CpuidEntry> cpuid = machine.vm().guestCpuid();
        config.section("cpuid", out -> {
            out.i32(cpuid.size());
            for (CpuidEntry e : cpuid) {
                out.i32(e.function()).i32(e.index()).i32(e.flags()).i32(e.eax()).i32(e.ebx()).i32(e.ecx()).i32(e.edx());
            }
        });
        w.send(MigrationWire.Type.CONFIG, config.toByteArray());
        MigrationRehearsal.save(machine.config(), MemoryMap.of(machine.vm().memory()), line -> LOG.log(System.Logger.Level.INFO, "migration: " + line));
        w.expect(MigrationWire.Type.ACK, options.timeout(), "the destination to check the configuration and set up memory");
    }

    private void endRound(MigrationWire w, int round, long pages) throws MigrationException {
        sendRoundEnd(w, round, pages);
        w.expect(MigrationWire.Type.ACK, options.timeout(), "the destination to take round " + round + " of memory");
    }

    private static void sendRoundEnd(MigrationWire w, int round, long pages) throws MigrationException {
        ByteBuffer end = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(round).putLong(pages).flip();
        w.send(MigrationWire.Type.ROUND_END, end);
    }

    private void set(Phase phase, int round, long lastRoundPages, long dirtyRate, long bandwidth, long expected) {
        progress = new Progress(phase, round, wire == null ? 0 : wire.bytesSent(), lastRoundPages, dirtyRate, bandwidth, expected, 0,
                millisSince(started), null);
    }

    private List<VirtioBlk> drives() {
        List<VirtioBlk> drives = new ArrayList<>();
        for (VirtioDevice device : machine.devices().virtioDevices()) {
            if (device instanceof VirtioBlk blk) {
                drives.add(blk);
            }
        }
        return drives;
    }

    /**
     * Sends the pages {@code dirty} marks, or with null all pages that are not zero (the
     * destination's memory starts zeroed), in MEMORY messages of runs; returns how many pages.
     * Each page is copied out of guest memory before its checksum is taken, so a guest writing it
     * meanwhile cannot make the message corrupt; the dirty log sends it again.
     */
    private long sendPages(MigrationWire w, DirtyPages dirty) throws MigrationException {
        if (runs == null) {
            runs = new Runs(w);
        }
        runs.pages = 0;
        for (GuestMemory.Region region : machine.vm().memory().regions()) {
            MemorySegment memory = region.backing().segment();
            DirtyPages.Range marks = dirty == null ? null : dirty.range(region.guestAddress());
            long count = region.size() / PAGE;
            for (long page = 0; page < count; page++) {
                if (marks != null && !marks.isDirty(page)) {
                    runs.close();
                    if (cancelled) {
                        checkCancelled();
                    }
                    continue;
                }
                MemorySegment bytes = memory.asSlice(page * PAGE, PAGE);
                boolean zero = bytes.mismatch(ZERO_PAGE) == -1;
                if (zero && dirty == null) {
                    runs.close();
                    continue;
                }
                runs.add(region.guestAddress() + page * PAGE, zero ? null : bytes);
            }
            runs.close();
        }
        runs.flush();
        return runs.pages;
    }

    /**
     * MEMORY messages being filled: runs of consecutive pages, each a header (guest address u64,
     * page count u32, kind u32: 0 data follows, 1 zero pages) and for data its pages.
     */
    private static final class Runs {
        private final MigrationWire wire;
        private final ByteBuffer buffer = ByteBuffer.allocateDirect(MigrationWire.MEMORY_CHUNK + 4096).order(ByteOrder.LITTLE_ENDIAN);
        private final MemorySegment segment = MemorySegment.ofBuffer(buffer);
        private int runHeader = -1; // position of the open run's header, or -1
        private int runKind;
        private long runNext; // the guest address that would extend the open run
        private int runPages;
        long pages;

        Runs(MigrationWire wire) {
            this.wire = wire;
        }

        /** Adds the page at {@code guestAddress}: {@code bytes}, or a zero page when null. */
        void add(long guestAddress, MemorySegment bytes) throws MigrationException {
            int kind = bytes == null ? RUN_ZERO : RUN_DATA;
            if (runHeader >= 0 && (guestAddress != runNext || kind != runKind)) {
                close();
            }
            if (buffer.position() + RUN_HEADER + (kind == RUN_DATA ? PAGE : 0) > MigrationWire.MEMORY_CHUNK) {
                close();
                flush();
            }
            if (runHeader < 0) {
                runHeader = buffer.position();
                buffer.putLong(guestAddress).putInt(0).putInt(kind);
                runKind = kind;
                runPages = 0;
            }
            if (bytes != null) {
                MemorySegment.copy(bytes, 0, segment, buffer.position(), PAGE);
                buffer.position(buffer.position() + (int) PAGE);
            }
            runPages++;
            pages++;
            runNext = guestAddress + PAGE;
        }

        void close() {
            if (runHeader >= 0) {
                buffer.putInt(runHeader + 8, runPages);
                runHeader = -1;
            }
        }

        void flush() throws MigrationException {
            close();
            if (buffer.position() > 0) {
                buffer.flip();
                wire.send(MigrationWire.Type.MEMORY, buffer);
                buffer.clear();
            }
        }
    }

    private static long millisSince(long start) {
        return (System.nanoTime() - start) / 1_000_000;
    }

    /** Where the guest's stop went, step by step: what makes the downtime, in the log. */
    private static final class StopTimes {
        private final StringBuilder steps = new StringBuilder();
        private long last;

        StopTimes(long start) {
            last = start;
        }

        void mark(String step) {
            long now = System.nanoTime();
            steps.append(steps.isEmpty() ? "" : ", ").append(step).append(' ').append((now - last) / 1_000_000).append(" ms");
            last = now;
        }

        @Override
        public String toString() {
            return steps.toString();
        }
    }
}
