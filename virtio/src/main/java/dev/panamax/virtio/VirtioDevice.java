package dev.panamax.virtio;

import dev.panamax.sys.EventFd;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.GuestMemoryException;
import java.lang.System.Logger.Level;
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
 * I/O, except while a reset waits for requests in flight.
 */
public abstract class VirtioDevice implements AutoCloseable {
    public static final int ACKNOWLEDGE = 1;
    public static final int DRIVER = 2;
    public static final int DRIVER_OK = 4;
    public static final int FEATURES_OK = 8;
    public static final int DEVICE_NEEDS_RESET = 0x40;
    public static final int FAILED = 0x80;

    public static final int VIRTIO_F_RING_INDIRECT_DESC = 28;
    public static final int VIRTIO_F_RING_EVENT_IDX = 29;
    public static final int VIRTIO_F_VERSION_1 = 32;

    private static final System.Logger LOG = System.getLogger(VirtioDevice.class.getName());

    private final String name;
    private final int deviceType;
    private final long deviceFeatures;
    private final int maxQueueSize;
    private final QueueSettings[] settings;
    private final EventFd[] notifyEvents;
    private final QueueWorker[] workers;
    private volatile GuestMemory memory;
    private volatile VirtioInterrupts interrupts;
    private volatile long driverFeatures;
    private final AtomicInteger status = new AtomicInteger();
    private final AtomicReference<String> failure = new AtomicReference<>();
    private boolean closed;

    /**
     * The device-type configuration space, little-endian, which the device fills in its constructor
     * and never changes after, so the transports' configuration generation is always 0. The driver
     * only reads it: a device with writable fields overrides {@link #writeConfig}.
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
        this.deviceFeatures = deviceFeatures | 1L << VIRTIO_F_VERSION_1 | 1L << VIRTIO_F_RING_INDIRECT_DESC
                | 1L << VIRTIO_F_RING_EVENT_IDX;
        this.maxQueueSize = maxQueueSize;
        this.config = new byte[configSize];
        this.settings = new QueueSettings[queueCount];
        this.notifyEvents = new EventFd[queueCount];
        this.workers = new QueueWorker[queueCount];
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
        String threadPrefix = name.replaceAll("[^A-Za-z0-9]+", "-").replaceAll("^-|-$", "");
        for (int i = 0; i < queues.length; i++) {
            if (queues[i] != null) {
                workers[i] = new QueueWorker(queues[i]);
                workers[i].thread = Thread.ofPlatform().daemon().name(threadPrefix + "-q" + i).start(workers[i]);
            }
        }
    }

    private void reset() {
        stopWorkers();
        for (QueueSettings s : settings) {
            s.reset();
        }
        driverFeatures = 0;
        failure.set(null);
        status.set(0);
    }

    private void stopWorkers() {
        for (int i = 0; i < workers.length; i++) {
            if (workers[i] != null) {
                workers[i].stop = true;
                notifyEvents[i].signal(); // a wake-up left over only costs the next worker one empty pass
            }
        }
        boolean interrupted = false;
        for (int i = 0; i < workers.length; i++) {
            while (workers[i] != null) {
                try {
                    workers[i].thread.join();
                    workers[i] = null;
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

    /** Reads {@code size} (1, 2, 4 or 8) bytes, little-endian; out of range reads 0. */
    public final long readConfig(int offset, int size) {
        if (offset < 0 || size < 1 || size > 8 || offset > config.length - size) {
            return 0;
        }
        long value = 0;
        for (int i = size - 1; i >= 0; i--) {
            value = value << 8 | (config[offset + i] & 0xff);
        }
        return value;
    }

    /** The driver writes the configuration space: ignored, as no field of Panamax's devices is writable. */
    public void writeConfig(int offset, int size, long value) {}

    /** Queue {@code index}'s driver-programmed settings. */
    public QueueSettings queue(int index) {
        return settings[Objects.checkIndex(index, settings.length)];
    }

    /** The eventfd queue {@code queueIndex}'s thread waits on; the transport makes it an ioeventfd. */
    public EventFd notifyEvent(int queueIndex) {
        return notifyEvents[Objects.checkIndex(queueIndex, notifyEvents.length)];
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
     * Serves {@code queue} on its I/O thread until {@code running} turns false. This one waits on the
     * queue's {@link #notifyEvent notify eventfd}, hands each chain to {@link #handle} and interrupts
     * as the driver asks. A device that must also wait for something else overrides it with a loop of
     * its own, which must return soon after {@code running} turns false: that comes with a signal on
     * the queue's notify eventfd. Exceptions are handled as {@link #handle}'s.
     */
    protected void serve(VirtQueue queue, BooleanSupplier running) {
        DescriptorChain chain = queue.newChain();
        EventFd notify = notifyEvents[queue.index()];
        // A notification may have come before this thread started: look once without waiting.
        while (running.getAsBoolean()) {
            boolean used = false;
            do {
                while (running.getAsBoolean() && queue.pop(chain)) {
                    queue.addUsed(chain.head(), handle(queue, chain));
                    used = true;
                }
            } while (running.getAsBoolean() && queue.armNotification());
            if (used) {
                interruptIfWanted(queue);
            }
            notify.read();
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
        for (EventFd e : notifyEvents) {
            if (e != null) {
                e.close();
            }
        }
    }

    /** One queue's I/O thread. */
    private final class QueueWorker implements Runnable {
        private final VirtQueue queue;
        volatile boolean stop;
        Thread thread;

        QueueWorker(VirtQueue queue) {
            this.queue = queue;
        }

        @Override
        public void run() {
            try {
                serve(queue, () -> !stop && failure.get() == null);
            } catch (VirtioProtocolException e) {
                fail(e.getMessage());
            } catch (GuestMemoryException e) {
                fail("queue " + queue.index() + ": " + e.getMessage());
            } catch (Throwable e) {
                LOG.log(Level.ERROR, name + ": queue " + queue.index() + " stopped by an unexpected error", e);
                fail("internal error on queue " + queue.index() + ": " + e);
            }
        }
    }
}
