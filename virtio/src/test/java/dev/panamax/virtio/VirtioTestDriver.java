package dev.panamax.virtio;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.Seccomp;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.ThreadSandbox;
import java.lang.invoke.VarHandle;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.function.IntConsumer;

/**
 * A virtio driver in Java, in place of a guest: lays out split rings in {@link GuestMemory},
 * negotiates features, writes descriptor chains (direct and indirect), notifies the device through
 * its eventfd and reads the used ring back. Queue q's rings live at {@code 0x1000 + q * 0x4000}
 * (queues up to 256 entries); buffers are handed out from {@code 0x40000} up.
 */
public final class VirtioTestDriver {
    public static final Duration TIMEOUT = Duration.ofSeconds(10);
    private static final long RINGS = 0x1000;
    private static final long RING_STRIDE = 0x4000;
    private static final long BUFFERS = 0x40000;

    /** One buffer of a chain: device-writable or device-readable. */
    public record Buffer(long address, long length, boolean writable) {
        public static Buffer readable(long address, long length) {
            return new Buffer(address, length, false);
        }

        public static Buffer writable(long address, long length) {
            return new Buffer(address, length, true);
        }
    }

    /** A used-ring entry. */
    public record Used(int id, int length) {}

    private final VirtioDevice device;
    private final GuestMemory memory;
    private final CountingInterrupts interrupts;
    private final IntConsumer notifier;
    private final int[] nextDescriptor;
    private final int[] availIdx;
    private final int[] usedSeen;
    private int queueSize;
    private long nextBuffer = BUFFERS;

    public VirtioTestDriver(VirtioDevice device, GuestMemory memory) {
        this.device = device;
        this.memory = memory;
        this.interrupts = new CountingInterrupts(device.queueCount());
        int n = device.queueCount();
        nextDescriptor = new int[n];
        availIdx = new int[n];
        usedSeen = new int[n];
        this.notifier = q -> device.notifyEvent(q).signal();
        device.connect(memory, interrupts);
        confine(device);
    }

    /**
     * Every forbidden system call of a device I/O thread driven by a test driver: the device tests
     * run their devices' threads under their seccomp filters, the proof that each profile is whole.
     */
    public static final List<Seccomp.Violation> VIOLATIONS = new CopyOnWriteArrayList<>();
    private static final ThreadSandbox SANDBOX = ThreadSandbox.reportingTo(VIOLATIONS::add);

    /** Has {@code device}'s I/O threads confine themselves, unless it is a test's own device with no profile. */
    static void confine(VirtioDevice device) {
        try {
            device.ioThreadProfile();
        } catch (UnsupportedOperationException e) {
            return;
        }
        device.confineIoThreads(SANDBOX);
    }

    /**
     * A driver behind a transport, which connected the device and carries the driver's register
     * writes: the test programs the rings' addresses ({@link #descTable} etc.) and {@code queueSize}
     * through the transport, and {@code notifier} kicks a queue the way that transport does.
     */
    public VirtioTestDriver(VirtioDevice device, GuestMemory memory, int queueSize, IntConsumer notifier) {
        this.device = device;
        this.memory = memory;
        this.interrupts = null;
        this.notifier = notifier;
        this.queueSize = queueSize;
        int n = device.queueCount();
        nextDescriptor = new int[n];
        availIdx = new int[n];
        usedSeen = new int[n];
        for (int q = 0; q < n; q++) {
            memory.write(RINGS + q * RING_STRIDE, new byte[(int) RING_STRIDE]);
        }
    }

    /**
     * This driver going on with {@code restored}, a device that restored the state of this one's
     * (a snapshot's restore): the same rings, descriptors and positions; {@code restored} is
     * connected to the same memory, with interrupts counted afresh, and notified from now on.
     */
    public VirtioTestDriver continuedOn(VirtioDevice restored) {
        VirtioTestDriver next = new VirtioTestDriver(restored, memory);
        next.queueSize = queueSize;
        next.nextBuffer = nextBuffer;
        System.arraycopy(nextDescriptor, 0, next.nextDescriptor, 0, nextDescriptor.length);
        System.arraycopy(availIdx, 0, next.availIdx, 0, availIdx.length);
        System.arraycopy(usedSeen, 0, next.usedSeen, 0, usedSeen.length);
        return next;
    }

    public CountingInterrupts interrupts() {
        return interrupts;
    }

    public GuestMemory memory() {
        return memory;
    }

    public VirtioDevice device() {
        return device;
    }

    public int queueSize() {
        return queueSize;
    }

    /** Feature negotiation up to FEATURES_OK; returns whether the device accepted the features. */
    public boolean negotiate(long features) {
        device.setStatus(VirtioDevice.ACKNOWLEDGE);
        device.setStatus(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER);
        device.setDriverFeatures(features);
        device.setStatus(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK);
        return (device.status() & VirtioDevice.FEATURES_OK) != 0;
    }

    /** The whole initialisation: features, every queue ready with {@code size} entries, DRIVER_OK. */
    public void start(long features, int size) {
        assertThat(negotiate(features)).as("FEATURES_OK accepted").isTrue();
        queueSize = size;
        for (int q = 0; q < device.queueCount(); q++) {
            long base = RINGS + q * RING_STRIDE;
            memory.write(base, new byte[(int) RING_STRIDE]); // rings start zeroed, as a driver leaves them
            QueueSettings s = device.queue(q);
            s.setSize(size);
            s.setDescTable(descTable(q));
            s.setAvailRing(availRing(q));
            s.setUsedRing(usedRing(q));
            s.setReady(true);
            nextDescriptor[q] = 0;
            availIdx[q] = 0;
            usedSeen[q] = 0;
        }
        device.setStatus(device.status() | VirtioDevice.DRIVER_OK);
    }

    /** Every feature the device offers. */
    public void start(int size) {
        start(device.deviceFeatures(), size);
    }

    /** Reset (status 0), as a driver recovering from DEVICE_NEEDS_RESET does. */
    public void reset() {
        device.setStatus(0);
        assertThat(device.status()).isZero();
    }

    public long descTable(int q) {
        return RINGS + q * RING_STRIDE;
    }

    public long availRing(int q) {
        return descTable(q) + 0x1000;
    }

    public long usedRing(int q) {
        return descTable(q) + 0x2000;
    }

    /** A fresh zeroed buffer of {@code length} bytes in guest memory. */
    public long allocate(int length) {
        long address = nextBuffer;
        nextBuffer = (nextBuffer + length + 15) & ~15L;
        memory.write(address, new byte[length]);
        return address;
    }

    public long allocate(byte[] contents) {
        long address = allocate(contents.length);
        memory.write(address, contents);
        return address;
    }

    public byte[] read(long address, int length) {
        byte[] data = new byte[length];
        memory.read(address, data, 0, length);
        return data;
    }

    /** Writes descriptor {@code index} of a table at {@code table} (a queue's or an indirect one). */
    public void writeDescriptor(long table, int index, long address, long length, int flags, int next) {
        long at = table + 16L * index;
        memory.writeLong(at, address);
        memory.writeInt(at + 8, (int) length);
        memory.writeShort(at + 12, (short) flags);
        memory.writeShort(at + 14, (short) next);
    }

    /** Takes the queue's next {@code count} descriptors (wrapping) and returns the first index. */
    public int takeDescriptors(int q, int count) {
        int first = nextDescriptor[q];
        nextDescriptor[q] = (first + count) % queueSize;
        return first;
    }

    /** Writes a direct chain over {@code buffers}, makes it available and notifies; returns its head. */
    public int submit(int q, Buffer... buffers) {
        int head = offer(q, buffers);
        notify(q);
        return head;
    }

    /** Writes a direct chain over {@code buffers} and makes it available, without notifying; returns its head. */
    public int offer(int q, Buffer... buffers) {
        int head = takeDescriptors(q, buffers.length);
        for (int i = 0; i < buffers.length; i++) {
            int index = (head + i) % queueSize;
            boolean last = i == buffers.length - 1;
            writeDescriptor(descTable(q), index, buffers[i].address(), buffers[i].length(),
                    (buffers[i].writable() ? VirtQueue.DESC_F_WRITE : 0) | (last ? 0 : VirtQueue.DESC_F_NEXT),
                    last ? 0 : (index + 1) % queueSize);
        }
        publish(q, head);
        return head;
    }

    /** Writes {@code buffers} as one indirect table behind a single queue descriptor; returns its head. */
    public int submitIndirect(int q, Buffer... buffers) {
        long table = allocate(16 * buffers.length);
        for (int i = 0; i < buffers.length; i++) {
            boolean last = i == buffers.length - 1;
            writeDescriptor(table, i, buffers[i].address(), buffers[i].length(),
                    (buffers[i].writable() ? VirtQueue.DESC_F_WRITE : 0) | (last ? 0 : VirtQueue.DESC_F_NEXT), last ? 0 : i + 1);
        }
        int head = takeDescriptors(q, 1);
        writeDescriptor(descTable(q), head, table, 16L * buffers.length, VirtQueue.DESC_F_INDIRECT, 0);
        publish(q, head);
        notify(q);
        return head;
    }

    /** Puts {@code head} on the available ring and publishes the new index (release). */
    public void publish(int q, int head) {
        memory.writeShort(availRing(q) + 4 + 2L * (availIdx[q] % queueSize), (short) head);
        availIdx[q] = (availIdx[q] + 1) & 0xffff;
        setAvailIdx(q, availIdx[q]);
    }

    /** Stores the available index as is, for tests of a lying driver. */
    public void setAvailIdx(int q, int value) {
        VarHandle.releaseFence();
        memory.writeShort(availRing(q) + 2, (short) value);
        VarHandle.fullFence();
    }

    public void notify(int q) {
        notifier.accept(q);
    }

    public void setAvailFlags(int q, int flags) {
        memory.writeShort(availRing(q), (short) flags);
        VarHandle.fullFence();
    }

    /** used_event (EVENT_IDX): interrupt once the used index passes this value. */
    public void setUsedEvent(int q, int value) {
        memory.writeShort(availRing(q) + 4 + 2L * queueSize, (short) value);
        VarHandle.fullFence();
    }

    /** avail_event (EVENT_IDX), as the device published it. */
    public int availEvent(int q) {
        return Short.toUnsignedInt(memory.readShort(usedRing(q) + 4 + 8L * queueSize));
    }

    public int usedIdx(int q) {
        int idx = Short.toUnsignedInt(memory.readShort(usedRing(q) + 2));
        VarHandle.acquireFence();
        return idx;
    }

    /** Waits for the next used entry of queue {@code q}. */
    public Used awaitUsed(int q) {
        int want = usedSeen[q];
        await(() -> usedIdx(q) != want, "a used entry on queue " + q + " (used index " + want + ")");
        long entry = usedRing(q) + 4 + 8L * (want % queueSize);
        usedSeen[q] = (want + 1) & 0xffff;
        return new Used(memory.readInt(entry), memory.readInt(entry + 4));
    }

    /** The next used entry of queue {@code q} if the device has added one, else null; does not wait. */
    public Used pollUsed(int q) {
        int want = usedSeen[q];
        if (usedIdx(q) == want) {
            return null;
        }
        long entry = usedRing(q) + 4 + 8L * (want % queueSize);
        usedSeen[q] = (want + 1) & 0xffff;
        return new Used(memory.readInt(entry), memory.readInt(entry + 4));
    }

    /** Waits until the device sets DEVICE_NEEDS_RESET and raises its configuration interrupt; returns the reason. */
    public String awaitFailure() {
        await(() -> (device.status() & VirtioDevice.DEVICE_NEEDS_RESET) != 0 && interrupts.configCount() > 0,
                "DEVICE_NEEDS_RESET and a configuration interrupt");
        return device.failure();
    }

    public static void await(BooleanSupplier condition, String what) {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            LockSupport.parkNanos(20_000);
        }
    }
}
