package dev.panamax.virtio.mmio;

import dev.panamax.virtio.QueueNotifier;
import dev.panamax.virtio.QueueSettings;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioInterrupts;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.InterruptLine;
import dev.panamax.vm.MmioDevice;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.util.OptionalLong;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The virtio-mmio transport, version 2 (VIRTIO 1.x 4.2): a 4 KiB register window and an interrupt
 * line, announced to Linux on its command line as {@code virtio_mmio.device=4K@BASE:IRQ} (the VMM's
 * device manager chooses both). Queue
 * notifications are bound to ioeventfds matching the queue index; interrupts set a bit in the
 * interrupt status register and send an edge on the line.
 *
 * <p>Its state, for a snapshot, is the device's (section {@code virtio}) and then the transport's
 * registers (section {@code virtio-mmio}: the feature and queue selectors and the interrupt status).
 */
public final class VirtioMmioDevice implements MmioDevice, VirtioInterrupts, Stateful, AutoCloseable {
    public static final long SIZE = 0x1000;
    static final int MAGIC = 0x74726976; // "virt"
    static final int VERSION = 2;
    static final int VENDOR_ID = 0x584d4e50; // "PNMX"

    static final int MAGIC_VALUE = 0x000;
    static final int VERSION_REG = 0x004;
    static final int DEVICE_ID = 0x008;
    static final int VENDOR = 0x00c;
    static final int DEVICE_FEATURES = 0x010;
    static final int DEVICE_FEATURES_SEL = 0x014;
    static final int DRIVER_FEATURES = 0x020;
    static final int DRIVER_FEATURES_SEL = 0x024;
    static final int QUEUE_SEL = 0x030;
    static final int QUEUE_NUM_MAX = 0x034;
    static final int QUEUE_NUM = 0x038;
    static final int QUEUE_READY = 0x044;
    static final int QUEUE_NOTIFY = 0x050;
    static final int INTERRUPT_STATUS = 0x060;
    static final int INTERRUPT_ACK = 0x064;
    static final int STATUS = 0x070;
    static final int QUEUE_DESC_LOW = 0x080;
    static final int QUEUE_DESC_HIGH = 0x084;
    static final int QUEUE_DRIVER_LOW = 0x090;
    static final int QUEUE_DRIVER_HIGH = 0x094;
    static final int QUEUE_DEVICE_LOW = 0x0a0;
    static final int QUEUE_DEVICE_HIGH = 0x0a4;
    static final int CONFIG_GENERATION = 0x0fc;
    static final int CONFIG = 0x100;

    private final VirtioDevice device;
    private final InterruptLine irq;
    private final QueueNotifier notifier;

    /**
     * Guards the register state vCPUs change. The device's I/O threads raise interrupts without it,
     * and it is never held while the device's status changes: a reset waits for those threads.
     */
    private final Object lock = new Object();
    private int deviceFeatureSelect; // guarded by lock
    private int driverFeatureSelect; // guarded by lock
    private int queueSelect; // guarded by lock
    private final AtomicInteger interruptStatus = new AtomicInteger();

    /**
     * @param base the guest-physical address of the register window, where queue notifications are bound
     * @param irq the line the device interrupts on
     */
    public VirtioMmioDevice(VirtioDevice device, GuestMemory memory, long base, InterruptLine irq, QueueNotifier notifier) {
        this.device = device;
        this.irq = irq;
        this.notifier = notifier;
        device.connect(memory, this);
        for (int q = 0; q < device.queueCount(); q++) {
            notifier.bind(device, q, base + QUEUE_NOTIFY, 4, OptionalLong.of(q));
        }
    }

    public VirtioDevice device() {
        return device;
    }

    @Override
    public void queue(int queueIndex) {
        raise(1);
    }

    @Override
    public void config() {
        raise(2);
    }

    private void raise(int bit) {
        interruptStatus.getAndUpdate(bits -> bits | bit);
        irq.pulse();
    }

    @Override
    public long read(long offset, int size) {
        if (offset >= CONFIG) {
            return device.readConfig((int) (offset - CONFIG), size);
        }
        if (size != 4 || (offset & 3) != 0) {
            return 0; // registers are 32 bits wide
        }
        synchronized (lock) {
            QueueSettings q = selectedQueue();
            return switch ((int) offset) {
                case MAGIC_VALUE -> MAGIC;
                case VERSION_REG -> VERSION;
                case DEVICE_ID -> device.deviceType();
                case VENDOR -> VENDOR_ID;
                case DEVICE_FEATURES -> device.deviceFeatureWord(deviceFeatureSelect) & 0xffffffffL;
                case QUEUE_NUM_MAX -> q == null ? 0 : device.maxQueueSize();
                case QUEUE_READY -> q != null && q.ready() ? 1 : 0;
                case INTERRUPT_STATUS -> interruptStatus.get();
                case STATUS -> device.status();
                case CONFIG_GENERATION -> 0; // no configuration field changes torn (VirtioDevice.setConfigInt)
                default -> 0; // write-only or reserved
            };
        }
    }

    @Override
    public void write(long offset, int size, long value) {
        if (offset >= CONFIG) {
            device.writeConfig((int) (offset - CONFIG), size, value);
            return;
        }
        if (size != 4 || (offset & 3) != 0) {
            return;
        }
        int v = (int) value;
        if (offset == STATUS) {
            // Outside the lock: a reset waits for the I/O threads, which may be raising an interrupt.
            device.setStatus(v & 0xff);
            if ((v & 0xff) == 0) {
                synchronized (lock) {
                    deviceFeatureSelect = 0;
                    driverFeatureSelect = 0;
                    queueSelect = 0;
                }
                interruptStatus.set(0);
            }
            return;
        }
        synchronized (lock) {
            QueueSettings q = selectedQueue();
            boolean settable = q != null && !q.ready();
            switch ((int) offset) {
                case DEVICE_FEATURES_SEL -> deviceFeatureSelect = v;
                case DRIVER_FEATURES_SEL -> driverFeatureSelect = v;
                case DRIVER_FEATURES -> device.setDriverFeatureWord(driverFeatureSelect, v);
                case QUEUE_SEL -> queueSelect = v;
                case QUEUE_NUM -> {
                    if (settable) {
                        q.setSize(v);
                    }
                }
                case QUEUE_READY -> {
                    if (q != null) {
                        q.setReady((v & 1) == 1);
                    }
                }
                case QUEUE_NOTIFY -> {
                    // Reached only when no ioeventfd took the write.
                    if (v >= 0 && v < device.queueCount()) {
                        device.notifyEvent(v).signal();
                    }
                }
                case INTERRUPT_ACK -> interruptStatus.getAndUpdate(bits -> bits & ~v);
                case QUEUE_DESC_LOW -> { if (settable) q.setDescTable(low(q.descTable(), v)); }
                case QUEUE_DESC_HIGH -> { if (settable) q.setDescTable(high(q.descTable(), v)); }
                case QUEUE_DRIVER_LOW -> { if (settable) q.setAvailRing(low(q.availRing(), v)); }
                case QUEUE_DRIVER_HIGH -> { if (settable) q.setAvailRing(high(q.availRing(), v)); }
                case QUEUE_DEVICE_LOW -> { if (settable) q.setUsedRing(low(q.usedRing(), v)); }
                case QUEUE_DEVICE_HIGH -> { if (settable) q.setUsedRing(high(q.usedRing(), v)); }
                default -> { } // read-only or reserved
            }
        }
    }

    private QueueSettings selectedQueue() {
        return queueSelect >= 0 && queueSelect < device.queueCount() ? device.queue(queueSelect) : null;
    }

    /** The device's I/O threads finish the requests in hand and park: see {@link VirtioDevice#quiesce}. */
    @Override
    public void quiesce() {
        device.quiesce();
    }

    @Override
    public void resumeWork() {
        device.resumeWork();
    }

    /** Section {@code virtio}, the device's; section {@code virtio-mmio}, the selectors and the interrupt status. */
    @Override
    public void saveState(StateWriter out) {
        out.section("virtio", device);
        out.section("virtio-mmio", registers -> {
            synchronized (lock) {
                registers.i32(deviceFeatureSelect).i32(driverFeatureSelect).i32(queueSelect);
            }
            registers.i32(interruptStatus.get());
        });
    }

    /**
     * Checks both sections whole before changing anything, then takes the registers and the device's
     * state; the device's queues run again if they ran. A pending interrupt (a bit in the interrupt
     * status) is sent again: at worst the driver looks at its rings once for nothing. The VM's
     * interrupt controller must have been restored before, or the edge is lost.
     */
    @Override
    public void restoreState(StateReader in) {
        StateReader deviceState = in.section("virtio");
        VirtioDevice.SavedState saved = device.readState(deviceState);
        deviceState.end();
        StateReader registers = in.section("virtio-mmio");
        // Any value is one a driver may have written: an absent selection reads as 0.
        int deviceFeatures = registers.i32("device features selector");
        int driverFeatures = registers.i32("driver features selector");
        int queue = registers.i32("queue selector");
        int pending = registers.i32In(0, 3, "interrupt status");
        registers.end();

        synchronized (lock) {
            deviceFeatureSelect = deviceFeatures;
            driverFeatureSelect = driverFeatures;
            queueSelect = queue;
        }
        interruptStatus.set(pending);
        device.applyState(saved);
        if (pending != 0) {
            irq.pulse();
        }
    }

    private static long low(long field, int value) {
        return field & 0xffffffff00000000L | (value & 0xffffffffL);
    }

    private static long high(long field, int value) {
        return field & 0xffffffffL | (long) value << 32;
    }

    @Override
    public void close() {
        notifier.unbindAll(device);
        device.close();
    }
}
