package dev.panamax.devices;

import dev.panamax.devices.pci.PciConfigSpace;
import dev.panamax.devices.pci.PciDevice;
import dev.panamax.vm.MmioDevice;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.lang.System.Logger.Level;
import java.util.Objects;

/**
 * The paravirtual panic device on PCI, as QEMU's {@code pvpanic-pci} (1b36:0011), which Linux's
 * {@code pvpanic-pci} driver drives: one byte register at the start of memory BAR 0. Reading it
 * gives the events the device supports ({@link #SUPPORTED}: PANICKED and CRASH_LOADED), which the
 * driver reads once as it binds; the guest kernel writes an event when it panics: {@link
 * #PANICKED}, or {@link #CRASH_LOADED} when a crash kernel (kdump) is loaded to take over.
 *
 * <p>Each event the guest writes goes to the {@link Listener} on the writing vCPU's thread (the VMM
 * ends the VM on a panic). Bits the device does not support are logged once and ignored, as QEMU
 * does; other bytes of the BAR read 0 and ignore writes. Thread-safe.
 */
public final class PvPanic implements PciDevice, Stateful {
    public static final int VENDOR_ID = 0x1b36; // Red Hat, as QEMU's
    public static final int DEVICE_ID = 0x0011;
    /** PCI_CLASS_SYSTEM_OTHER, programming interface 0. */
    public static final int CLASS_CODE = 0x088000;
    public static final int REVISION = 1;
    /** Virtio's subsystem vendor and QEMU's subsystem ID for its devices, as QEMU gives this one. */
    private static final int SUBSYSTEM_VENDOR_ID = 0x1af4;
    private static final int SUBSYSTEM_ID = 0x1100;
    /** The smallest memory BAR the bus places; only its first byte is a register. */
    public static final long BAR_SIZE = 4096;

    /** Event bit 0: the guest kernel panicked. */
    public static final int PANICKED = 1;
    /** Event bit 1: the guest kernel crashed, and a crash kernel it loaded takes over. */
    public static final int CRASH_LOADED = 2;
    public static final int SUPPORTED = PANICKED | CRASH_LOADED;

    private static final System.Logger LOG = System.getLogger(PvPanic.class.getName());

    /** Told of each event the guest writes, on the writing vCPU's thread. */
    @FunctionalInterface
    public interface Listener {
        /** @param event {@link #PANICKED} or {@link #CRASH_LOADED}, one at a time */
        void event(int event);
    }

    private final PciConfigSpace config = new PciConfigSpace(VENDOR_ID, DEVICE_ID, CLASS_CODE, REVISION, SUBSYSTEM_VENDOR_ID, SUBSYSTEM_ID);
    private final Listener listener;
    private final Register register = new Register();
    private int events; // guarded by this: every supported event the guest wrote so far
    private boolean driverSeen; // guarded by this: the guest read the register (its driver binds so)
    private boolean unknownLogged; // guarded by this

    public PvPanic(Listener listener) {
        this.listener = Objects.requireNonNull(listener, "listener");
        config.addMemoryBar(0, BAR_SIZE, false, false);
    }

    @Override
    public String name() {
        return "pvpanic";
    }

    @Override
    public PciConfigSpace config() {
        return config;
    }

    @Override
    public MmioDevice barHandler(int index) {
        if (index != 0) {
            throw new IllegalArgumentException("pvpanic has BAR 0 only, not " + index);
        }
        return register;
    }

    /** Every supported event the guest wrote so far, OR-ed. */
    public synchronized int events() {
        return events;
    }

    /** Whether the guest panicked: it wrote {@link #PANICKED} or {@link #CRASH_LOADED}. */
    public synchronized boolean panicked() {
        return events != 0;
    }

    /**
     * Whether the guest read the register: Linux's driver does so once as it binds, so a guest that
     * never did has no pvpanic driver and would report a panic only on its console.
     */
    public synchronized boolean driverSeen() {
        return driverSeen;
    }

    /** The register at offset 0 of BAR 0. */
    private final class Register implements MmioDevice {
        @Override
        public long read(long offset, int size) {
            if (offset != 0) {
                return 0;
            }
            synchronized (PvPanic.this) {
                driverSeen = true;
            }
            return SUPPORTED;
        }

        @Override
        public void write(long offset, int size, long value) {
            if (offset != 0) {
                return;
            }
            int written = (int) (value & 0xff); // the register is one byte: a wider write's other bytes are not its
            int unknown = written & ~SUPPORTED;
            int known = written & SUPPORTED;
            synchronized (PvPanic.this) {
                if (unknown != 0 && !unknownLogged) {
                    unknownLogged = true;
                    LOG.log(Level.WARNING, () -> String.format("pvpanic: the guest wrote event bits 0x%02x, which the device does not"
                            + " support (it offers 0x%02x); ignored", unknown, SUPPORTED));
                }
                events |= known;
            }
            if ((known & PANICKED) != 0) {
                listener.event(PANICKED);
            }
            if ((known & CRASH_LOADED) != 0) {
                listener.event(CRASH_LOADED);
            }
        }
    }

    /** Writes the configuration space, the events written so far and whether the driver read the register. */
    @Override
    public synchronized void saveState(StateWriter out) {
        config.saveState(out);
        out.u8(events).bool(driverSeen);
    }

    @Override
    public void restoreState(StateReader in) {
        config.restoreState(in);
        int savedEvents = in.u8("the pvpanic events");
        if ((savedEvents & ~SUPPORTED) != 0) {
            throw in.fail(String.format("the pvpanic events 0x%02x have bits besides the supported 0x%02x", savedEvents, SUPPORTED));
        }
        boolean savedDriverSeen = in.bool("whether the pvpanic driver read the register");
        synchronized (this) {
            events = savedEvents;
            driverSeen = savedDriverSeen;
        }
    }
}
