package dev.panamax.virtio.pci;

import dev.panamax.devices.pci.Msix;
import dev.panamax.devices.pci.PciConfigSpace;
import dev.panamax.devices.pci.PciDevice;
import dev.panamax.virtio.QueueNotifier;
import dev.panamax.virtio.QueueSettings;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioInterrupts;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.MmioDevice;
import dev.panamax.vm.MsiVector;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.util.OptionalLong;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.function.Supplier;

/**
 * The modern (VIRTIO 1.x) PCI transport: a function with vendor 0x1AF4 and device 0x1040 + type,
 * whose one 64-bit memory BAR holds the common, ISR, device-specific and notify structures (each
 * announced by a vendor capability) and the MSI-X table and PBA. Queue notifications are bound to
 * ioeventfds, so a guest kick wakes the device's I/O thread without a vCPU exit; interrupts go out
 * as MSI-X messages through irqfd. Legacy INTx is not offered (interrupt pin 0): Linux's driver uses
 * MSI-X whenever the function has it.
 *
 * <p>Its state, for a snapshot, is the device's (section {@code virtio}) and then the transport's
 * registers (section {@code virtio-pci}: the common configuration's selectors, the configuration
 * and queue MSI-X vectors, and the ISR status).
 */
public final class VirtioPciDevice implements PciDevice, Stateful, AutoCloseable {
    public static final int VENDOR_ID = 0x1af4;
    private static final int MODERN_DEVICE_ID_BASE = 0x1040;
    /** The spec asks modern devices for a subsystem device ID of 0x40 or more. */
    private static final int SUBSYSTEM_ID = 0x40;
    private static final int VENDOR_CAPABILITY = 0x09;
    private static final int CFG_COMMON = 1;
    private static final int CFG_NOTIFY = 2;
    private static final int CFG_ISR = 3;
    private static final int CFG_DEVICE = 4;

    // The BAR's layout.
    static final int BAR = 0;
    static final long BAR_SIZE = 0x8000;
    static final int COMMON = 0x0000;
    static final int COMMON_SIZE = 0x38;
    static final int ISR = 0x1000;
    static final int DEVICE = 0x2000;
    static final int NOTIFY = 0x3000;
    static final int NOTIFY_MULTIPLIER = 4;
    static final int MSIX_TABLE = 0x4000;
    static final int MSIX_PBA = 0x6000;
    /** Enough queues for every vector to fit the table space (plus one for configuration changes). */
    static final int MAX_QUEUES = (MSIX_PBA - MSIX_TABLE) / Msix.ENTRY_SIZE - 1;

    static final int NO_VECTOR = 0xffff;

    private final VirtioDevice device;
    private final PciConfigSpace config;
    private final Msix msix;
    private final QueueNotifier notifier;
    private final MmioDevice bar = new Bar();

    /**
     * Guards the register state vCPUs change. The device's I/O threads raise interrupts without it,
     * and it is never held while the device's status changes: a reset waits for those threads.
     */
    private final Object lock = new Object();
    private int deviceFeatureSelect; // guarded by lock
    private int driverFeatureSelect; // guarded by lock
    private int queueSelect; // guarded by lock
    private volatile int configVector = NO_VECTOR;
    private final AtomicIntegerArray queueVectors;
    private final AtomicInteger isr = new AtomicInteger();

    /**
     * @param memory the guest memory the device's queues live in
     * @param msi allocates the interrupt vectors behind the MSI-X table
     * @param notifier binds queue notify addresses to the queues' eventfds
     */
    public VirtioPciDevice(VirtioDevice device, GuestMemory memory, Supplier<MsiVector> msi, QueueNotifier notifier) {
        if (device.queueCount() > MAX_QUEUES) {
            throw new IllegalArgumentException(device.name() + " has " + device.queueCount()
                    + " queues; the PCI transport carries at most " + MAX_QUEUES);
        }
        this.device = device;
        this.notifier = notifier;
        this.queueVectors = new AtomicIntegerArray(device.queueCount());
        resetVectors();
        this.config = new PciConfigSpace(VENDOR_ID, MODERN_DEVICE_ID_BASE + device.deviceType(), classCode(device.deviceType()),
                1, VENDOR_ID, SUBSYSTEM_ID);
        config.addMemoryBar(BAR, BAR_SIZE, true, false);
        addVirtioCapability(CFG_COMMON, COMMON, COMMON_SIZE, null);
        addVirtioCapability(CFG_NOTIFY, NOTIFY, NOTIFY_MULTIPLIER * device.queueCount(), NOTIFY_MULTIPLIER);
        addVirtioCapability(CFG_ISR, ISR, 1, null);
        if (device.configSize() > 0) {
            addVirtioCapability(CFG_DEVICE, DEVICE, device.configSize(), null);
        }
        this.msix = new Msix(config, device.queueCount() + 1, BAR, MSIX_TABLE, MSIX_PBA, msi);
        device.connect(memory, new Interrupts());
    }

    private static int classCode(int deviceType) {
        return switch (deviceType) {
            case 1 -> 0x020000; // network controller, Ethernet
            case 2 -> 0x018000; // mass storage, other
            default -> 0xff0000; // unassigned class
        };
    }

    private void addVirtioCapability(int type, int offset, int length, Integer notifyMultiplier) {
        int capLength = notifyMultiplier == null ? 16 : 20;
        byte[] body = new byte[capLength - 2];
        body[0] = (byte) capLength;
        body[1] = (byte) type;
        body[2] = BAR;
        putInt(body, 6, offset);
        putInt(body, 10, length);
        if (notifyMultiplier != null) {
            putInt(body, 14, notifyMultiplier);
        }
        config.addCapability(VENDOR_CAPABILITY, body, null, null);
    }

    private static void putInt(byte[] b, int at, int v) {
        for (int i = 0; i < 4; i++) {
            b[at + i] = (byte) (v >>> (8 * i));
        }
    }

    public VirtioDevice device() {
        return device;
    }

    @Override
    public String name() {
        return device.name();
    }

    /** The MSI-X table and PBA, for tests. */
    Msix msix() {
        return msix;
    }

    @Override
    public PciConfigSpace config() {
        return config;
    }

    @Override
    public MmioDevice barHandler(int index) {
        if (index != BAR) {
            throw new IllegalArgumentException(device.name() + " has no BAR " + index);
        }
        return bar;
    }

    @Override
    public void barMapped(int index, long address) {
        notifier.unbindAll(device);
        if (address != -1) {
            for (int q = 0; q < device.queueCount(); q++) {
                notifier.bind(device, q, address + NOTIFY + (long) NOTIFY_MULTIPLIER * q, 2, OptionalLong.empty());
            }
        }
    }

    @Override
    public void close() {
        notifier.unbindAll(device);
        device.close();
        msix.close();
    }

    /** Queue interrupts go to the queue's MSI-X vector, configuration changes to the config vector. */
    private final class Interrupts implements VirtioInterrupts {
        @Override
        public void queue(int queueIndex) {
            isr.getAndUpdate(bits -> bits | 1);
            msix.signal(queueIndex >= 0 && queueIndex < queueVectors.length() ? queueVectors.get(queueIndex) : NO_VECTOR);
        }

        @Override
        public void config() {
            isr.getAndUpdate(bits -> bits | 2);
            msix.signal(configVector);
        }
    }

    private final class Bar implements MmioDevice {
        @Override
        public long read(long offset, int size) {
            if (offset >= MSIX_PBA) {
                return msix.readPba(offset - MSIX_PBA, size);
            } else if (offset >= MSIX_TABLE) {
                return msix.readTable(offset - MSIX_TABLE, size);
            } else if (offset >= NOTIFY) {
                return 0;
            } else if (offset >= DEVICE) {
                return device.readConfig((int) (offset - DEVICE), size);
            } else if (offset >= ISR) {
                return offset == ISR ? isr.getAndSet(0) : 0; // reading the ISR acknowledges it
            } else if (offset + size <= COMMON_SIZE) {
                return readCommon((int) offset, size);
            }
            return 0;
        }

        @Override
        public void write(long offset, int size, long value) {
            if (offset >= MSIX_PBA) {
                return; // read-only
            } else if (offset >= MSIX_TABLE) {
                msix.writeTable(offset - MSIX_TABLE, size, value);
            } else if (offset >= NOTIFY) {
                // Reached only when no ioeventfd took the write (an odd access size, or none bound).
                long queue = (offset - NOTIFY) / NOTIFY_MULTIPLIER;
                if (queue < device.queueCount()) {
                    device.notifyEvent((int) queue).signal();
                }
            } else if (offset >= DEVICE) {
                device.writeConfig((int) (offset - DEVICE), size, value);
            } else if (offset + size <= COMMON_SIZE) {
                writeCommon((int) offset, size, value);
            }
        }
    }

    private QueueSettings selectedQueue() {
        return queueSelect < device.queueCount() ? device.queue(queueSelect) : null;
    }

    /** The common configuration structure (VIRTIO 1.x 4.1.4.3); 64-bit fields may be read in halves. */
    private long readCommon(int offset, int size) {
        synchronized (lock) {
            QueueSettings q = selectedQueue();
            return switch (offset) {
                case 0x00 -> deviceFeatureSelect;
                case 0x04 -> device.deviceFeatureWord(deviceFeatureSelect) & 0xffffffffL;
                case 0x08 -> driverFeatureSelect;
                case 0x0c -> device.driverFeatureWord(driverFeatureSelect) & 0xffffffffL;
                case 0x10 -> configVector;
                case 0x12 -> device.queueCount();
                case 0x14 -> device.status();
                case 0x15 -> 0; // config_generation: no configuration field changes torn (VirtioDevice.setConfigInt)
                case 0x16 -> queueSelect;
                case 0x18 -> q == null ? 0 : q.size();
                case 0x1a -> q == null ? NO_VECTOR : queueVectors.get(queueSelect);
                case 0x1c -> q != null && q.ready() ? 1 : 0;
                case 0x1e -> q == null ? 0 : queueSelect; // notify offsets are queue indices
                case 0x20, 0x24 -> q == null ? 0 : half(q.descTable(), offset - 0x20, size);
                case 0x28, 0x2c -> q == null ? 0 : half(q.availRing(), offset - 0x28, size);
                case 0x30, 0x34 -> q == null ? 0 : half(q.usedRing(), offset - 0x30, size);
                default -> 0;
            } & sizeMask(size);
        }
    }

    private void writeCommon(int offset, int size, long value) {
        if (offset == 0x14) {
            writeStatus((int) value & 0xff);
            return;
        }
        synchronized (lock) {
            QueueSettings q = selectedQueue();
            int v = (int) value;
            switch (offset) {
                case 0x00 -> deviceFeatureSelect = v;
                case 0x08 -> driverFeatureSelect = v;
                case 0x0c -> device.setDriverFeatureWord(driverFeatureSelect, v);
                case 0x10 -> configVector = vectorOrNone(v & 0xffff);
                case 0x16 -> queueSelect = v & 0xffff;
                case 0x18 -> {
                    if (q != null && !q.ready()) {
                        q.setSize(v & 0xffff);
                    }
                }
                case 0x1a -> {
                    if (q != null) {
                        queueVectors.set(queueSelect, vectorOrNone(v & 0xffff));
                    }
                }
                case 0x1c -> {
                    if (q != null && (v & 1) == 1) {
                        q.setReady(true); // the driver may not clear it; only a reset does
                    }
                }
                case 0x20, 0x24 -> {
                    if (q != null && !q.ready()) {
                        q.setDescTable(merge(q.descTable(), offset - 0x20, size, value));
                    }
                }
                case 0x28, 0x2c -> {
                    if (q != null && !q.ready()) {
                        q.setAvailRing(merge(q.availRing(), offset - 0x28, size, value));
                    }
                }
                case 0x30, 0x34 -> {
                    if (q != null && !q.ready()) {
                        q.setUsedRing(merge(q.usedRing(), offset - 0x30, size, value));
                    }
                }
                default -> { } // read-only fields
            }
        }
    }

    /** A vector the table has, or NO_VECTOR, which tells the driver the mapping failed. */
    private int vectorOrNone(int vector) {
        return vector < msix.vectors() ? vector : NO_VECTOR;
    }

    /** Outside the lock: a reset waits for the I/O threads, which may be raising an interrupt. */
    private void writeStatus(int status) {
        device.setStatus(status);
        if (status == 0) {
            synchronized (lock) {
                deviceFeatureSelect = 0;
                driverFeatureSelect = 0;
                queueSelect = 0;
            }
            resetVectors();
            isr.set(0);
        }
    }

    private void resetVectors() {
        configVector = NO_VECTOR;
        for (int q = 0; q < queueVectors.length(); q++) {
            queueVectors.set(q, NO_VECTOR);
        }
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

    /**
     * Sections {@code pci-config} (the configuration space) and {@code msix} (the table, PBA and
     * control bits); section {@code virtio}, the device's; section {@code virtio-pci}, the common
     * configuration's selectors, the vectors and the ISR.
     */
    @Override
    public void saveState(StateWriter out) {
        out.section("pci-config", config);
        out.section("msix", msix);
        out.section("virtio", device);
        out.section("virtio-pci", registers -> {
            synchronized (lock) {
                registers.i32(deviceFeatureSelect).i32(driverFeatureSelect).u16(queueSelect);
            }
            registers.u16(configVector);
            registers.i32(queueVectors.length());
            for (int q = 0; q < queueVectors.length(); q++) {
                registers.u16(queueVectors.get(q));
            }
            registers.i32(isr.get());
        });
    }

    /**
     * Checks every section whole before changing anything, then takes the registers and the
     * device's state; the device's queues run again if they ran. The ISR's pending bits are raised
     * again on their vectors: at worst the driver looks at its rings once for nothing. The VM's
     * interrupt routes must have been restored before.
     */
    @Override
    public void restoreState(StateReader in) {
        // The configuration space first: MSI-X keeps its enable and mask bits in a capability there.
        // The bus maps the BARs where the guest had them, which binds the queue notifications again.
        in.section("pci-config", config);
        in.section("msix", msix);
        StateReader deviceState = in.section("virtio");
        VirtioDevice.SavedState saved = device.readState(deviceState);
        deviceState.end();
        StateReader registers = in.section("virtio-pci");
        // Any selector value is one a driver may have written: an absent selection reads as 0.
        int deviceFeatures = registers.i32("device features selector");
        int driverFeatures = registers.i32("driver features selector");
        int queue = registers.u16("queue selector");
        int config = vector(registers, "configuration vector");
        int count = registers.count(queueVectors.length(), "queue vector");
        if (count != queueVectors.length()) {
            throw registers.fail("the snapshot's device has " + count + " queue vectors, and " + device.name() + " has "
                    + queueVectors.length() + " queues");
        }
        int[] vectors = new int[count];
        for (int q = 0; q < count; q++) {
            vectors[q] = vector(registers, "queue " + q + " vector");
        }
        int pending = registers.i32In(0, 3, "ISR status");
        registers.end();

        synchronized (lock) {
            deviceFeatureSelect = deviceFeatures;
            driverFeatureSelect = driverFeatures;
            queueSelect = queue;
        }
        configVector = config;
        for (int q = 0; q < count; q++) {
            queueVectors.set(q, vectors[q]);
        }
        isr.set(pending);
        device.applyState(saved);
        if ((pending & 1) != 0) {
            for (int q = 0; q < count; q++) {
                msix.signal(vectors[q]);
            }
        }
        if ((pending & 2) != 0) {
            msix.signal(config);
        }
    }

    /** A vector of the MSI-X table, or NO_VECTOR: what the driver's write left in a vector register. */
    private int vector(StateReader in, String what) {
        int vector = in.u16(what);
        if (vector != NO_VECTOR && vector >= msix.vectors()) {
            throw in.fail(what + " is " + vector + "; " + device.name() + "'s MSI-X table has vectors 0 to " + (msix.vectors() - 1)
                    + " (or " + NO_VECTOR + " for none)");
        }
        return vector;
    }

    private static long sizeMask(int size) {
        return size >= 8 ? -1L : (1L << (8 * size)) - 1;
    }

    /** The 4 or 8 bytes of a 64-bit field that an access at {@code at} (0 or 4) reads. */
    private static long half(long field, int at, int size) {
        return at == 0 ? (size == 8 ? field : field & 0xffffffffL) : field >>> 32;
    }

    private static long merge(long field, int at, int size, long value) {
        if (size == 8 && at == 0) {
            return value;
        }
        int shift = 8 * at;
        return field & ~(0xffffffffL << shift) | (value & 0xffffffffL) << shift;
    }
}
