package dev.panamax.virtio;

import dev.panamax.sys.CpuSet;
import dev.panamax.sys.EventFd;
import dev.panamax.sys.HostThreads;
import dev.panamax.sys.Poller;
import dev.panamax.sys.SyscallProfile;
import dev.panamax.virtio.ratelimit.RateLimiter;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.GuestMemoryException;
import dev.panamax.vm.ThreadSandbox;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

/**
 * The transport-independent part of a virtio 1.x device: feature negotiation, device status, queue
 * settings, the notification eventfds and one I/O thread per queue. A transport (PCI, MMIO) maps its
 * registers onto these methods; a device type (virtio-blk, ...) supplies its configuration space and
 * {@link #handle}.
 *
 * <p>Feature constants are bit numbers, as the specification numbers them: the mask is
 * {@code 1L << VIRTIO_F_VERSION_1}. Status constants are the bit values of the status byte.
 *
 * <p>When the driver sets DRIVER_OK, each ready queue gets a platform thread (named like
 * {@code virtio-blk-disk0-q0}) that waits on the queue's {@link #notifyEvent notify eventfd}, then
 * takes requests until the ring is empty, and interrupts the guest unless the driver suppressed it.
 * Anything the guest did wrong, and any unexpected error, ends in {@link #fail}: DEVICE_NEEDS_RESET,
 * the reason logged once, a configuration interrupt; the device stops until the driver resets it.
 * A device whose queues also wait for something else (a network backend's socket) serves them itself
 * by overriding {@link #serve}. No exception leaves an I/O thread and a vCPU never waits for device
 * I/O, except while a reset waits for requests in flight. A device with a {@link #rateLimiter rate
 * limiter} has each request pass it first: one it refuses goes back on the ring, and the queue's
 * thread sleeps until the tokens are back ({@link #awaitNotification}).
 *
 * <p>For a snapshot, {@link #quiesce} lets each I/O thread finish the request in its hands and park
 * until {@link #resumeWork}; then {@link #saveState} writes features, status and each queue's rings
 * and position. {@link #restoreState} (or {@link #readState} and {@link #applyState}, for a transport
 * that checks its own state between the two) checks all of it against this device and its guest
 * memory, then goes on where the snapshot's device stood: its queues running if it was.
 */
public abstract class VirtioDevice implements Stateful, AutoCloseable {
    public static final int ACKNOWLEDGE = 1;
    public static final int DRIVER = 2;
    public static final int DRIVER_OK = 4;
    public static final int FEATURES_OK = 8;
    public static final int DEVICE_NEEDS_RESET = 0x40;
    public static final int FAILED = 0x80;

    public static final int VIRTIO_F_RING_INDIRECT_DESC = 28;
    public static final int VIRTIO_F_RING_EVENT_IDX = 29;
    public static final int VIRTIO_F_VERSION_1 = 32;

    /** Status bits no device sets or keeps: the specification reserves them. */
    private static final int RESERVED_STATUS = 0x30;
    /** No field of a configuration space changes in a way a driver could read torn ({@link #setConfigInt}), so its generation stays 0. */
    public static final int CONFIG_GENERATION = 0;
    /** The longest failure reason a snapshot keeps, in characters. */
    private static final int MAX_FAILURE_CHARS = 1000;
    /** Between a quiesce's or a stop's wake-ups of a thread that has not parked yet: a wake-up may be taken by a wait inside a request. */
    private static final long WAKE_INTERVAL_MILLIS = 10;

    private static final System.Logger LOG = System.getLogger(VirtioDevice.class.getName());

    private final String name;
    private final int deviceType;
    /** Set in the constructor, and once more by {@link #offerFeatures} for a device whose host end is bound late. */
    private volatile long deviceFeatures;
    private final int maxQueueSize;
    private final QueueSettings[] settings;
    private final EventFd[] notifyEvents;
    private final QueueWorker[] workers;
    /** Per queue, made when it first waits with a timeout: waits for its notify eventfd or the timeout. Used by its I/O thread only. */
    private final Poller[] timedWaitPollers;
    private volatile GuestMemory memory;
    /** Whether the I/O threads confine themselves with a seccomp filter as they start, and whom they report to. */
    private volatile ThreadSandbox sandbox = ThreadSandbox.NONE;
    /** For tests: run by each I/O thread once it is confined, before it serves its queue (a forbidden call, to see it stopped). */
    private static volatile Runnable ioThreadTestHook;
    /** The host CPUs the I/O threads pin themselves to as they start, or null to run where the process may. */
    private volatile CpuSet ioCpus;
    private volatile VirtioInterrupts interrupts;
    private volatile long driverFeatures;
    private final AtomicInteger status = new AtomicInteger();
    private final AtomicReference<String> failure = new AtomicReference<>();
    private boolean closed;
    /** Guards {@link #quiescing} and each worker's parked and ended flags; the workers wait on it while quiesced. */
    private final Object workLock = new Object();
    private volatile boolean quiescing;

    /**
     * The device-type configuration space, little-endian, which the device fills in its constructor
     * and changes after only through {@link #setConfigInt}, so the transports' configuration
     * generation is always 0. The driver only reads it: a device with writable fields overrides
     * {@link #writeConfig}.
     */
    protected final byte[] config;

    /**
     * @param deviceFeatures the device-type bits; VERSION_1, RING_INDIRECT_DESC and RING_EVENT_IDX
     *                       are always added
     * @param maxQueueSize   a power of two, at most 32768
     * @param configSize     bytes of device-type configuration space ({@link #config})
     */
    protected VirtioDevice(String name, int deviceType, long deviceFeatures, int queueCount, int maxQueueSize, int configSize) {
        if (queueCount < 1 || maxQueueSize < 1 || maxQueueSize > VirtQueue.MAX_SIZE || Integer.bitCount(maxQueueSize) != 1) {
            throw new IllegalArgumentException("bad queue count " + queueCount + " or maximum queue size " + maxQueueSize
                    + " (a power of two up to " + VirtQueue.MAX_SIZE + ")");
        }
        this.name = Objects.requireNonNull(name);
        this.deviceType = deviceType;
        this.deviceFeatures = withTransportFeatures(deviceFeatures);
        this.maxQueueSize = maxQueueSize;
        this.config = new byte[configSize];
        this.settings = new QueueSettings[queueCount];
        this.notifyEvents = new EventFd[queueCount];
        this.workers = new QueueWorker[queueCount];
        this.timedWaitPollers = new Poller[queueCount];
        try {
            for (int i = 0; i < queueCount; i++) {
                settings[i] = new QueueSettings(maxQueueSize);
                notifyEvents[i] = EventFd.create(false);
            }
        } catch (RuntimeException e) {
            closeEvents();
            throw e;
        }
    }

    /** For logs, e.g. {@code virtio-blk (disk0)}. */
    public final String name() {
        return name;
    }

    /** The virtio device ID: 1 network, 2 block. */
    public final int deviceType() {
        return deviceType;
    }

    /** Feature bits the device offers. */
    public final long deviceFeatures() {
        return deviceFeatures;
    }

    private static long withTransportFeatures(long deviceTypeFeatures) {
        return deviceTypeFeatures | 1L << VIRTIO_F_VERSION_1 | 1L << VIRTIO_F_RING_INDIRECT_DESC | 1L << VIRTIO_F_RING_EVENT_IDX;
    }

    /**
     * Replaces the device-type feature bits the constructor offered, for a device whose host end
     * is bound after it was built (a migration's destination opens the tap only once the source let
     * go of it, and offers what that tap can do). Only before the driver has begun: what a driver
     * read must not change under it.
     *
     * @throws IllegalStateException once the driver has set any status bit
     */
    protected final synchronized void offerFeatures(long deviceTypeFeatures) {
        if (status.get() != 0) {
            throw new IllegalStateException(name + ": the driver has begun, so the features offered cannot change");
        }
        deviceFeatures = withTransportFeatures(deviceTypeFeatures);
    }

    public final int queueCount() {
        return settings.length;
    }

    public final int maxQueueSize() {
        return maxQueueSize;
    }

    /** Once, by the transport, before the guest runs. */
    public void connect(GuestMemory memory, VirtioInterrupts interrupts) {
        if (this.memory != null) {
            throw new IllegalStateException(name + " is already connected");
        }
        this.interrupts = Objects.requireNonNull(interrupts);
        this.memory = Objects.requireNonNull(memory);
    }

    /** The guest memory this device was connected to (null before {@link #connect}). */
    protected final GuestMemory memory() {
        return memory;
    }

    /** The features the driver accepted (as written; checked when it sets FEATURES_OK). */
    public long driverFeatures() {
        return driverFeatures;
    }

    /** Ignored once FEATURES_OK is set: the negotiation is over. */
    public synchronized void setDriverFeatures(long features) {
        if ((status.get() & FEATURES_OK) == 0) {
            driverFeatures = features;
        }
    }

    /** Bits {@code 32 * select} to {@code 32 * select + 31} of the device's features, as transports show them; 0 past bit 63. */
    public final int deviceFeatureWord(int select) {
        return select == 0 || select == 1 ? (int) (deviceFeatures >>> (32 * select)) : 0;
    }

    /** Bits {@code 32 * select} to {@code 32 * select + 31} of the driver's features. */
    public final int driverFeatureWord(int select) {
        return select == 0 || select == 1 ? (int) (driverFeatures >>> (32 * select)) : 0;
    }

    /** The driver writes 32 feature bits, as transports carry them; words past bit 63 are ignored. */
    public final synchronized void setDriverFeatureWord(int select, int word) {
        if (select == 0 || select == 1) {
            int shift = 32 * select;
            setDriverFeatures(driverFeatures & ~(0xffffffffL << shift) | (word & 0xffffffffL) << shift);
        }
    }

    /** Whether feature {@code bit} was negotiated. */
    protected final boolean negotiated(int bit) {
        return (driverFeatures & 1L << bit) != 0;
    }

    public int status() {
        return status.get();
    }

    /**
     * The driver writes the status byte. 0 resets the device: stops its I/O threads (waiting for
     * requests in flight), forgets features and queue settings. FEATURES_OK stays clear when the
     * driver accepted features the device did not offer, or not VERSION_1. Setting DRIVER_OK checks
     * the ready queues' settings (DEVICE_NEEDS_RESET if bad) and starts their I/O threads.
     */
    public synchronized void setStatus(int value) {
        if (closed) {
            return;
        }
        value &= 0xff;
        if (value == 0) {
            reset();
            return;
        }
        int old = status.get();
        int requested = value & ~DEVICE_NEEDS_RESET; // only the device sets that bit
        if ((requested & FEATURES_OK) != 0 && (old & FEATURES_OK) == 0 && !featuresAcceptable()) {
            requested &= ~FEATURES_OK;
        }
        int driverBits = requested;
        status.getAndUpdate(s -> driverBits | (s & DEVICE_NEEDS_RESET));
        if ((requested & DRIVER_OK) != 0 && (old & DRIVER_OK) == 0 && (old & DEVICE_NEEDS_RESET) == 0) {
            activate();
        }
    }

    private boolean featuresAcceptable() {
        long unoffered = driverFeatures & ~deviceFeatures;
        if (unoffered != 0) {
            LOG.log(Level.WARNING, () -> String.format("%s: driver accepted features 0x%x the device does not offer; FEATURES_OK refused",
                    name, unoffered));
            return false;
        }
        if (!negotiated(VIRTIO_F_VERSION_1)) {
            LOG.log(Level.WARNING, () -> name + ": driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported); FEATURES_OK refused");
            return false;
        }
        return true;
    }

    private void activate() {
        if (memory == null) {
            throw new IllegalStateException(name + " is not connected to guest memory");
        }
        if ((status.get() & FEATURES_OK) == 0) {
            fail("driver set DRIVER_OK without FEATURES_OK");
            return;
        }
        VirtQueue[] queues = new VirtQueue[settings.length];
        try {
            for (int i = 0; i < settings.length; i++) {
                if (settings[i].ready()) {
                    queues[i] = VirtQueue.create(i, settings[i], maxQueueSize, memory,
                            negotiated(VIRTIO_F_RING_EVENT_IDX), negotiated(VIRTIO_F_RING_INDIRECT_DESC));
                }
            }
        } catch (VirtioProtocolException | GuestMemoryException e) {
            fail(e.getMessage());
            return;
        }
        for (int i = 0; i < queues.length; i++) {
            if (queues[i] != null) {
                startWorker(queues[i]);
            }
        }
    }

    /**
     * Pins this device's I/O threads to the host CPUs {@code cpus}: each thread pins itself as it
     * starts, before it serves its queue. The threads start when the driver activates the device
     * (from the vCPU thread that writes DRIVER_OK, whose affinity they would otherwise inherit).
     */
    public void pinIoThreads(CpuSet cpus) {
        this.ioCpus = Objects.requireNonNull(cpus, "cpus");
    }

    /** The host CPUs this device's I/O threads are pinned to, or null. */
    public CpuSet ioCpus() {
        return ioCpus;
    }

    /**
     * Has each I/O thread, as it starts, confine itself to {@link #ioThreadProfile()}'s system calls
     * when {@code sandbox} is {@linkplain ThreadSandbox#enabled() on}: for the VM's {@link
     * dev.panamax.vm.Vm#sandbox()}, before the guest runs.
     */
    public void confineIoThreads(ThreadSandbox sandbox) {
        this.sandbox = Objects.requireNonNull(sandbox, "sandbox");
    }

    /**
     * The system calls this device's I/O threads make: what {@link #handle} or {@link #serve} does,
     * through its backend. Each device type says its own.
     */
    protected SyscallProfile ioThreadProfile() {
        throw new UnsupportedOperationException(name + " declares no seccomp profile for its I/O threads");
    }

    /** For tests only: {@code hook} runs on each I/O thread that starts from now on, once it is confined; null for none. */
    public static void setIoThreadTestHook(Runnable hook) {
        ioThreadTestHook = hook;
    }

    private void startWorker(VirtQueue queue) {
        String threadPrefix = name.replaceAll("[^A-Za-z0-9]+", "-").replaceAll("^-|-$", "");
        QueueWorker worker = new QueueWorker(queue);
        workers[queue.index()] = worker;
        worker.thread = Thread.ofPlatform().daemon().name(threadPrefix + "-q" + queue.index()).unstarted(worker);
        ThreadSandbox.start(worker.thread); // not from a vCPU's thread, whose filter it would inherit
    }

    private void reset() {
        stopWorkers();
        for (QueueSettings s : settings) {
            s.reset();
        }
        driverFeatures = 0;
        failure.set(null);
        status.set(0);
        afterReset();
    }

    /**
     * After the driver reset the device, and at the start of {@link #applyState}: the I/O threads
     * are stopped; a device forgets here what only the old driver knew of (vsock's connections).
     * This one does nothing.
     */
    protected void afterReset() {}

    /**
     * At the end of {@link #applyState}, before the queues' I/O threads start again: the device has
     * the snapshot's {@code status}. This one does nothing.
     */
    protected void afterStateApplied(int status) {}

    private void stopWorkers() {
        synchronized (workLock) {
            for (QueueWorker w : workers) {
                if (w != null) {
                    w.stop = true;
                }
            }
            workLock.notifyAll(); // the parked ones
        }
        boolean interrupted = false;
        for (int i = 0; i < workers.length; i++) {
            while (workers[i] != null) {
                // Again and again: a wait inside a request may have taken the wake-up. One left over
                // only costs the next worker one empty pass.
                notifyEvents[i].signal();
                try {
                    if (workers[i].thread.join(Duration.ofMillis(WAKE_INTERVAL_MILLIS))) {
                        workers[i] = null;
                    }
                } catch (InterruptedException e) {
                    interrupted = true; // the thread may still write guest memory: keep waiting
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** Size in bytes of the device-type configuration space. */
    public final int configSize() {
        return config.length;
    }

    /**
     * Reads {@code size} (1, 2, 4 or 8) bytes, little-endian; out of range reads 0. A read never
     * sees half of a {@link #setConfigInt} (both hold the array's lock).
     */
    public final long readConfig(int offset, int size) {
        if (offset < 0 || size < 1 || size > 8 || offset > config.length - size) {
            return 0;
        }
        long value = 0;
        synchronized (config) {
            for (int i = size - 1; i >= 0; i--) {
                value = value << 8 | (config[offset + i] & 0xff);
            }
        }
        return value;
    }

    /**
     * For a device whose configuration changes while the driver runs (the balloon's target): sets the
     * 32-bit little-endian field at {@code offset} whole, then tells the driver with a configuration
     * interrupt if it is connected. Each such field is read in one 32-bit access, so the
     * configuration generation can stay {@link #CONFIG_GENERATION}.
     */
    protected final void setConfigInt(int offset, int value) {
        synchronized (config) {
            for (int i = 0; i < 4; i++) {
                config[offset + i] = (byte) (value >>> (8 * i));
            }
        }
        configChanged();
    }

    /**
     * Tells the driver the configuration space changed, with a configuration interrupt, if it is
     * connected and has set DRIVER_OK: for a device that changed a field itself, holding the lock of
     * {@link #config} while it did (virtio-net's status, whose announce bit a live migration sets).
     */
    protected final void configChanged() {
        VirtioInterrupts target = interrupts;
        if (target != null && (status.get() & DRIVER_OK) != 0) {
            target.config();
        }
    }

    /** The driver writes the configuration space: ignored, as no field of Panamax's devices is writable. */
    public void writeConfig(int offset, int size, long value) {}

    /** One line per running queue ({@code VirtQueue.describe}), named by this device, for the report on a guest that hung. */
    public final List<String> describeQueues() {
        List<String> lines = new ArrayList<>();
        for (QueueWorker worker : workers) { // read without the lock: a stuck device must not stop its report
            if (worker != null) lines.add(name + " " + worker.queue.describe());
        }
        return lines;
    }

    /** Queue {@code index}'s driver-programmed settings. */
    public QueueSettings queue(int index) {
        return settings[Objects.checkIndex(index, settings.length)];
    }

    /** The eventfd queue {@code queueIndex}'s thread waits on; the transport makes it an ioeventfd. */
    public EventFd notifyEvent(int queueIndex) {
        return notifyEvents[Objects.checkIndex(queueIndex, notifyEvents.length)];
    }

    // ---- State, for snapshots ----

    /**
     * Writes what identifies this device's backend (a disk's image, a NIC's MAC), which a restore
     * checks with {@link #checkIdentity}. This one writes nothing.
     */
    protected void saveIdentity(StateWriter out) {}

    /**
     * Reads what {@link #saveIdentity} wrote and checks it against this device, which the restoring
     * VM built from its own configuration: a difference is a {@link StateFormatException} naming
     * both values. This one reads nothing.
     */
    protected void checkIdentity(StateReader in) {}

    /**
     * Writes the device type, its identity, the features offered and accepted, the status, the
     * configuration generation, the failure reason and, for each queue, the driver's settings and,
     * when its I/O thread runs, the rings it uses and how far it has come.
     *
     * @throws IllegalStateException when an I/O thread is not {@link #quiesce quiesced}
     */
    @Override
    public synchronized void saveState(StateWriter out) {
        if (!quiet()) {
            throw new IllegalStateException(name + ": its queues are in use; quiesce it before saving its state");
        }
        out.i32(deviceType);
        out.section("identity", this::saveIdentity);
        out.i64(deviceFeatures);
        out.i64(driverFeatures);
        out.u8(status.get());
        out.i32(CONFIG_GENERATION);
        String reason = failure.get();
        out.string(reason == null ? "" : reason.length() > MAX_FAILURE_CHARS ? reason.substring(0, MAX_FAILURE_CHARS) : reason);
        out.i32(settings.length);
        for (int i = 0; i < settings.length; i++) {
            QueueSettings s = settings[i];
            out.i32(s.size()).bool(s.ready()).i64(s.descTable()).i64(s.availRing()).i64(s.usedRing());
            VirtQueue queue = workers[i] == null ? null : workers[i].queue;
            out.bool(queue != null);
            if (queue != null) {
                VirtQueue.Geometry g = queue.geometry();
                VirtQueue.Position p = queue.position();
                out.i32(g.size()).i64(g.descTable()).i64(g.availRing()).i64(g.usedRing());
                out.u16(p.lastAvail()).u16(p.usedIdx()).u16(p.signalledUsed());
            }
        }
    }

    /**
     * At the end of {@link #readState}, once the core's part is checked: checks what {@link
     * #checkIdentity} read of the device's own state against the features the snapshot's driver
     * accepted and its status, with a {@link StateFormatException} naming the value. This one
     * checks nothing.
     */
    protected void checkDeviceState(StateReader in, long acceptedFeatures, int status) {}

    /** {@link #readState}, then {@link #applyState}. */
    @Override
    public void restoreState(StateReader in) {
        applyState(readState(in));
    }

    /**
     * Reads what {@link #saveState} wrote and checks all of it against this device and its guest
     * memory, changing nothing: the same device type and identity, features this device offers,
     * a status a device can have, queue sizes up to this device's maximum, the rings of running
     * queues inside guest memory and no request taken and not answered.
     *
     * @throws StateFormatException naming the first value that is wrong
     */
    public final SavedState readState(StateReader in) {
        if (memory == null) {
            throw new IllegalStateException(name + " is not connected to guest memory");
        }
        int type = in.i32("device type");
        if (type != deviceType) {
            throw in.fail("the snapshot's device is of virtio type " + type + ", and " + name + " is of type " + deviceType);
        }
        in.section("identity", this::checkIdentity);
        long offered = in.i64("features offered");
        long accepted = in.i64("features accepted");
        int state = in.u8("device status");
        int generation = in.i32("configuration generation");
        if (generation != CONFIG_GENERATION) {
            throw in.fail("configuration generation is " + generation + "; " + name + "'s configuration generation is always "
                    + CONFIG_GENERATION);
        }
        String reason = in.string(4 * MAX_FAILURE_CHARS, "failure reason");
        int count = in.count(settings.length, "queue");
        if (count != settings.length) {
            throw in.fail("the snapshot's device has " + count + " queues, and " + name + " has " + settings.length);
        }
        QueueState[] queues = new QueueState[count];
        for (int i = 0; i < count; i++) {
            queues[i] = readQueue(in, i);
        }
        checkStatus(in, state, offered, accepted, reason);
        checkDeviceState(in, accepted, state);
        for (int i = 0; i < count; i++) {
            if (queues[i].geometry() != null && (state & DRIVER_OK) == 0) {
                throw in.fail(String.format("queue %d is running, and the device status 0x%02x has no DRIVER_OK", i, state));
            }
        }
        return new SavedState(accepted, state, reason.isEmpty() ? null : reason, queues);
    }

    private QueueState readQueue(StateReader in, int i) {
        String q = "queue " + i;
        int size = in.i32(q + " size");
        if (size < 0 || size > maxQueueSize) {
            throw in.fail(q + ": size " + Integer.toUnsignedString(size) + " is more than " + name + "'s maximum " + maxQueueSize);
        }
        boolean ready = in.bool(q + " ready");
        long desc = in.i64(q + " descriptor table address");
        long avail = in.i64(q + " available ring address");
        long used = in.i64(q + " used ring address");
        if (!in.bool(q + " running")) {
            return new QueueState(size, ready, desc, avail, used, null, null);
        }
        VirtQueue.Geometry geometry = new VirtQueue.Geometry(in.i32(q + " ring size"), in.i64(q + " ring descriptor table address"),
                in.i64(q + " ring available ring address"), in.i64(q + " ring used ring address"));
        String problem = VirtQueue.geometryProblem(i, geometry.size(), geometry.descTable(), geometry.availRing(), geometry.usedRing(),
                maxQueueSize, memory);
        if (problem != null) {
            throw in.fail(problem);
        }
        VirtQueue.Position position = new VirtQueue.Position(in.u16(q + " last_avail_idx"), in.u16(q + " used index"),
                in.u16(q + " used index at the last interrupt"));
        int inFlight = (position.lastAvail() - position.usedIdx()) & 0xffff;
        if (inFlight != 0) {
            throw in.fail(q + ": " + inFlight + " requests were taken and not answered (last_avail_idx " + position.lastAvail()
                    + ", used index " + position.usedIdx() + "): the snapshot was taken without quiescing the device");
        }
        return new QueueState(size, ready, desc, avail, used, geometry, position);
    }

    private void checkStatus(StateReader in, int state, long offered, long accepted, String reason) {
        if ((state & RESERVED_STATUS) != 0) {
            throw in.fail(String.format("device status 0x%02x has reserved bits 0x%02x set", state, state & RESERVED_STATUS));
        }
        if ((state & DRIVER_OK) != 0 && (state & FEATURES_OK) == 0 && (state & DEVICE_NEEDS_RESET) == 0) {
            throw in.fail(String.format("device status 0x%02x has DRIVER_OK without FEATURES_OK, which only a failed device has", state));
        }
        if ((state & DEVICE_NEEDS_RESET) != 0 && reason.isEmpty()) {
            throw in.fail(String.format("device status 0x%02x has DEVICE_NEEDS_RESET and no reason for it", state));
        }
        if ((state & DEVICE_NEEDS_RESET) == 0 && !reason.isEmpty()) {
            throw in.fail(String.format("device status 0x%02x has no DEVICE_NEEDS_RESET, and a failure reason: %s", state, reason));
        }
        if ((state & FEATURES_OK) != 0) {
            long unoffered = accepted & ~deviceFeatures;
            if (unoffered != 0) {
                throw in.fail(String.format("the driver accepted features 0x%x, and %s offers 0x%x (the snapshot's device offered 0x%x)",
                        accepted, name, deviceFeatures, offered));
            }
            if ((accepted & 1L << VIRTIO_F_VERSION_1) == 0) {
                throw in.fail(String.format("device status 0x%02x has FEATURES_OK, and the features accepted 0x%x lack VIRTIO_F_VERSION_1",
                        state, accepted));
            }
        }
    }

    /**
     * Puts the device where {@link #readState} found the snapshot's: any I/O threads of its own are
     * stopped first, as by a reset. When the status has DRIVER_OK and not DEVICE_NEEDS_RESET, each
     * queue that ran gets its I/O thread again, which looks once at its ring for requests made
     * available before the snapshot. Raises no interrupt: the transport knows which were pending.
     */
    public final synchronized void applyState(SavedState state) {
        if (closed) {
            throw new IllegalStateException(name + " is closed");
        }
        reset();
        synchronized (workLock) {
            quiescing = false;
        }
        for (int i = 0; i < settings.length; i++) {
            QueueState q = state.queues[i];
            QueueSettings s = settings[i];
            s.setSize(q.size());
            s.setDescTable(q.descTable());
            s.setAvailRing(q.availRing());
            s.setUsedRing(q.usedRing());
            s.setReady(q.ready());
        }
        driverFeatures = state.driverFeatures;
        failure.set(state.failure);
        status.set(state.status);
        afterStateApplied(state.status);
        if ((state.status & DRIVER_OK) != 0 && (state.status & DEVICE_NEEDS_RESET) == 0) {
            for (int i = 0; i < settings.length; i++) {
                QueueState q = state.queues[i];
                if (q.geometry() != null) {
                    startWorker(VirtQueue.resume(i, q.geometry(), q.position(), memory, negotiated(VIRTIO_F_RING_EVENT_IDX),
                            negotiated(VIRTIO_F_RING_INDIRECT_DESC)));
                }
            }
        }
    }

    /** One queue as {@link #readState} found it: the driver's settings, and the rings and position of a running queue (else null). */
    private record QueueState(int size, boolean ready, long descTable, long availRing, long usedRing,
            VirtQueue.Geometry geometry, VirtQueue.Position position) {}

    /** A device's state from a snapshot, checked by {@link #readState} and not yet applied. */
    public static final class SavedState {
        private final long driverFeatures;
        private final int status;
        private final String failure;
        private final QueueState[] queues;

        private SavedState(long driverFeatures, int status, String failure, QueueState[] queues) {
            this.driverFeatures = driverFeatures;
            this.status = status;
            this.failure = failure;
            this.queues = queues;
        }

        /** The device status the snapshot's device had. */
        public int status() {
            return status;
        }
    }

    /** Why the device needs a reset, or null. */
    public String failure() {
        return failure.get();
    }

    /**
     * Marks the device broken: DEVICE_NEEDS_RESET, the reason logged (first failure only), a
     * configuration interrupt. Its queues stop taking requests until the driver resets it.
     */
    protected final void fail(String reason) {
        if (!failure.compareAndSet(null, reason)) {
            return;
        }
        status.getAndUpdate(s -> s | DEVICE_NEEDS_RESET);
        LOG.log(Level.WARNING, () -> name + " needs reset: " + reason);
        try {
            interrupts.config();
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, name + ": configuration interrupt failed", e);
        }
    }

    /**
     * Handles one request on its queue's I/O thread and returns the number of bytes written into the
     * chain's writable buffers (the used length). A {@link VirtioProtocolException} or
     * {@link GuestMemoryException} fails the device; I/O errors are for the device to answer. A
     * device that overrides {@link #serve} for all its queues need not implement it.
     */
    protected int handle(VirtQueue queue, DescriptorChain chain) {
        throw new UnsupportedOperationException(name + " serves queue " + queue.index() + " itself and handles no single requests");
    }

    /**
     * Handles {@code chains[0, n)}, requests taken off {@code queue} together, and puts each one's used
     * length into {@code usedLengths}: for a device that gives its backend several requests at once.
     * This one hands each to {@link #handle} in turn. Exceptions are handled as {@link #handle}'s.
     */
    protected void handleBatch(VirtQueue queue, DescriptorChain[] chains, int n, int[] usedLengths) {
        for (int i = 0; i < n; i++) {
            usedLengths[i] = handle(queue, chains[i]);
        }
    }

    /** How many requests {@link #serve} takes off {@code queue} at most for one {@link #handleBatch}; this one: 1. */
    protected int batchLimit(VirtQueue queue) {
        return 1;
    }

    /**
     * Serves {@code queue} on its I/O thread until {@code running} turns false. This one waits on the
     * queue's {@link #notifyEvent notify eventfd}, hands the chains it finds to {@link #handleBatch}
     * (up to {@link #batchLimit} at a time) and interrupts as the driver asks. A device that must also
     * wait for something else overrides it with a loop of its own, which must return soon after
     * {@code running} turns false: that comes with a signal on the queue's notify eventfd. Exceptions
     * are handled as {@link #handle}'s.
     */
    protected void serve(VirtQueue queue, BooleanSupplier running) {
        DescriptorChain[] chains = new DescriptorChain[Math.max(1, Math.min(batchLimit(queue), queue.size()))];
        for (int i = 0; i < chains.length; i++) {
            chains[i] = queue.newChain();
        }
        int[] heads = new int[chains.length];
        int[] usedLengths = new int[chains.length];
        EventFd notify = notifyEvents[queue.index()];
        RateLimiter limiter = rateLimiter(queue);
        // A notification may have come before this thread started: look once without waiting.
        while (running.getAsBoolean()) {
            boolean used = false;
            long throttledNanos = 0;
            do {
                int n;
                do {
                    n = 0;
                    RuntimeException malformed = null; // a chain that is none: the ones before it are still served
                    while (n < chains.length && running.getAsBoolean()) {
                        try {
                            if (!queue.pop(chains[n])) {
                                break;
                            }
                        } catch (VirtioProtocolException | GuestMemoryException e) {
                            malformed = e;
                            break;
                        }
                        if (limiter != null && (throttledNanos = limiter.tryConsume(requestBytes(queue, chains[n]))) > 0) {
                            queue.unpop(1); // parked on the ring, taken again in turn when tokens are back
                            break;
                        }
                        n++;
                    }
                    if (n > 0) {
                        handleBatch(queue, chains, n, usedLengths);
                        for (int i = 0; i < n; i++) {
                            heads[i] = chains[i].head();
                        }
                        queue.addUsed(heads, usedLengths, n);
                        used = true;
                    }
                    if (malformed != null) {
                        if (used) {
                            interruptIfWanted(queue);
                        }
                        throw malformed;
                    }
                } while (n == chains.length && throttledNanos == 0);
            } while (throttledNanos == 0 && running.getAsBoolean() && queue.armNotification());
            if (used) {
                interruptIfWanted(queue);
            }
            if (throttledNanos > 0) {
                awaitNotification(queue, throttledNanos);
            } else {
                notify.read();
            }
        }
    }

    /**
     * The rate limiter of the requests on {@code queue} for {@link #serve}, or null for none; called
     * once each time the queue's thread starts serving. This one: null.
     */
    protected RateLimiter rateLimiter(VirtQueue queue) {
        return null;
    }

    /** The bytes a request counts for in its queue's bandwidth bucket. This one: 0. */
    protected long requestBytes(VirtQueue queue, DescriptorChain chain) {
        return 0;
    }

    /**
     * Waits on {@code queue}'s I/O thread (a throttled one, or one that looks at its ring at intervals) until
     * {@code nanos} have passed, or its notify eventfd is signalled: a stop, a quiesce, a limiter's update, or
     * the driver's notification. Taking the notification does no harm: the caller looks at the ring anyway.
     */
    protected final void awaitNotification(VirtQueue queue, long nanos) {
        Poller poller = timedWaitPollers[queue.index()];
        if (poller == null) {
            poller = timedWaitPollers[queue.index()] = Poller.create(1);
            poller.add(notifyEvents[queue.index()], Poller.READABLE, queue.index());
        }
        if (poller.await(throttleMillis(nanos)) > 0) {
            notifyEvents[queue.index()].read();
        }
    }

    /** {@code nanos} as a poll timeout: rounded up to whole milliseconds, so the tokens are there after it. */
    public static int throttleMillis(long nanos) {
        return (int) Math.min(Integer.MAX_VALUE, Math.max(1, (nanos + 999_999) / 1_000_000));
    }

    /** Wakes the I/O thread of every queue, e.g. after a rate limiter's update: each looks at its ring again. */
    protected final void wakeQueues() {
        for (EventFd e : notifyEvents) {
            e.signal();
        }
    }

    /** After used entries were added to {@code queue}: interrupts the guest unless its driver suppressed that. */
    protected final void interruptIfWanted(VirtQueue queue) {
        if (queue.needsInterrupt()) {
            interrupts.queue(queue.index());
        }
    }

    /** Stops the I/O threads and closes the eventfds; subclasses close their backend after this. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            stopWorkers();
            status.getAndUpdate(s -> s & DEVICE_NEEDS_RESET);
        }
        closeEvents();
    }

    private void closeEvents() {
        for (Poller p : timedWaitPollers) {
            if (p != null) {
                p.close();
            }
        }
        for (EventFd e : notifyEvents) {
            if (e != null) {
                e.close();
            }
        }
    }

    /**
     * Whether queue {@code queue}'s thread is to give up the request in its hands: the device is
     * being reset or closed, or failed. While the device is only {@link #quiesce quiesced}, a request
     * in hand is finished: a device whose {@link #handle} waits for its backend waits while this is
     * false.
     */
    protected final boolean abandoning(VirtQueue queue) {
        QueueWorker worker = workers[queue.index()];
        return worker == null || worker.stop || failure.get() != null;
    }

    /**
     * Completes the requests in flight and parks the I/O threads, which keep their queues: each
     * finishes the request in its hands (its used entry written), takes no new one and waits until
     * {@link #resumeWork} (or a reset, or {@link #close}). Afterwards nothing writes guest memory or
     * changes the queues' state. Called with the vCPUs paused; waits as long as a request takes.
     */
    @Override
    public synchronized void quiesce() {
        synchronized (workLock) {
            quiescing = true;
            boolean interrupted = false;
            while (true) {
                boolean quiet = true;
                for (int i = 0; i < workers.length; i++) {
                    QueueWorker w = workers[i];
                    if (w != null && !w.parked && !w.ended) {
                        quiet = false;
                        // Again and again: a wait inside a request may have taken the wake-up.
                        notifyEvents[i].signal();
                    }
                }
                if (quiet) {
                    break;
                }
                try {
                    workLock.wait(WAKE_INTERVAL_MILLIS);
                } catch (InterruptedException e) {
                    interrupted = true; // a thread may still write guest memory: keep waiting
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Lets the I/O threads parked by {@link #quiesce} take requests again; each looks at its ring once. */
    @Override
    public void resumeWork() {
        synchronized (workLock) {
            quiescing = false;
            workLock.notifyAll();
        }
    }

    /** Whether every I/O thread is parked or ended: nothing changes the queues. */
    private boolean quiet() {
        synchronized (workLock) {
            for (QueueWorker w : workers) {
                if (w != null && !w.parked && !w.ended) {
                    return false;
                }
            }
            return true;
        }
    }

    /** One queue's I/O thread. */
    private final class QueueWorker implements Runnable {
        private final VirtQueue queue;
        volatile boolean stop;
        boolean parked; // guarded by workLock
        boolean ended; // guarded by workLock
        Thread thread;

        QueueWorker(VirtQueue queue) {
            this.queue = queue;
        }

        @Override
        public void run() {
            try {
                CpuSet cpus = ioCpus;
                if (cpus != null) {
                    try {
                        HostThreads.pinCurrentThread(cpus);
                    } catch (RuntimeException e) {
                        fail("queue " + queue.index() + ": its I/O thread could not be pinned to host CPUs " + cpus + ": " + e.getMessage());
                        return;
                    }
                }
                try {
                    if (sandbox.enabled()) {
                        sandbox.confineCurrentThread(ioThreadProfile());
                    }
                } catch (RuntimeException e) {
                    fail("queue " + queue.index() + ": its I/O thread could not install its seccomp filter: " + e.getMessage());
                    return;
                }
                Runnable hook = ioThreadTestHook;
                if (hook != null) {
                    hook.run();
                }
                do {
                    serve(queue, () -> !stop && !quiescing && failure.get() == null);
                } while (awaitResume());
            } catch (VirtioProtocolException e) {
                fail(e.getMessage());
            } catch (GuestMemoryException e) {
                fail("queue " + queue.index() + ": " + e.getMessage());
            } catch (Throwable e) {
                LOG.log(Level.ERROR, name + ": queue " + queue.index() + " stopped by an unexpected error", e);
                fail("internal error on queue " + queue.index() + ": " + e);
            } finally {
                synchronized (workLock) {
                    ended = true;
                    workLock.notifyAll();
                }
            }
        }

        /** After {@link #serve} returned: parks while the device is quiesced; false when this thread is to end. */
        private boolean awaitResume() {
            synchronized (workLock) {
                parked = true;
                workLock.notifyAll();
                boolean interrupted = false;
                while (quiescing && !stop && failure.get() == null) {
                    try {
                        workLock.wait();
                    } catch (InterruptedException e) {
                        interrupted = true; // only a resume, a stop or a failure ends the wait
                    }
                }
                parked = false;
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
                return !stop && failure.get() == null;
            }
        }
    }
}
