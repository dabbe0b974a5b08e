package dev.panamax.devices.pci;

import dev.panamax.vm.AddressBus;
import dev.panamax.vm.MmioDevice;
import dev.panamax.vm.PortIoDevice;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.lang.System.Logger.Level;
import java.util.Arrays;

/**
 * PCI bus 0 behind a host bridge, reached through configuration mechanism #1: the guest writes a
 * function's address to port 0xCF8 and reads or writes its configuration space at 0xCFC-0xCFF.
 * Slot 0 is the host bridge itself, which is how Linux recognizes the mechanism. Devices get slots
 * 1-31 (function 0) and their BARs are placed, as firmware would, in the bus's MMIO window; when
 * the guest moves a BAR, the bus moves its MMIO mapping once memory decoding is on again.
 * Thread-safe: vCPU threads may access it concurrently.
 *
 * <p>The bus's saved state is its own: the configuration address latch and the host bridge's
 * configuration space, with the identity of the function in each slot to check the restoring VM
 * has the same ones. Each function saves its configuration space itself; restoring it maps its
 * BARs on this bus where they were.
 */
public final class PciBus implements PortIoDevice, Stateful {
    public static final int PORT = 0xcf8;
    public static final int PORT_COUNT = 8;
    public static final int SLOTS = 32;

    private static final System.Logger LOG = System.getLogger(PciBus.class.getName());
    private static final int ENABLE = 1 << 31;
    private static final int BAR_REGISTERS_END = 0x28;
    /** A slot's identity in saved state when it holds no function: what an empty slot reads, all ones. */
    private static final int EMPTY_SLOT = -1;

    private final AddressBus<MmioDevice> mmio;
    private final long windowStart;
    private final long windowEnd;
    private final PciDevice[] slots = new PciDevice[SLOTS];
    /** Per slot and BAR: where it is mapped on the MMIO bus now, -1 for nowhere. */
    private final long[][] mapped = new long[SLOTS][PciConfigSpace.BAR_COUNT];
    private long nextFree;
    private int configAddress; // guarded by this

    /**
     * @param mmio where BARs are mapped
     * @param windowStart start of the guest-physical range BARs are placed in (and may be moved within)
     * @param windowEnd end of that range (exclusive)
     */
    public PciBus(AddressBus<MmioDevice> mmio, long windowStart, long windowEnd) {
        this.mmio = mmio;
        this.windowStart = windowStart;
        this.windowEnd = windowEnd;
        this.nextFree = windowStart;
        for (long[] m : mapped) {
            Arrays.fill(m, -1);
        }
        slots[0] = new HostBridge();
    }

    /**
     * Puts {@code device} in the next free slot, places its BARs in the window and maps them.
     *
     * @return the slot (device number)
     * @throws IllegalStateException when no slot or no window space is left
     */
    public synchronized int add(PciDevice device) {
        int slot = 1;
        while (slot < SLOTS && slots[slot] != null) {
            slot++;
        }
        if (slot == SLOTS) {
            throw new IllegalStateException("no free PCI slot for " + device.name() + ": all " + (SLOTS - 1) + " are taken");
        }
        PciConfigSpace config = device.config();
        long next = nextFree;
        for (PciConfigSpace.Bar bar : config.bars()) {
            long address = (next + bar.size() - 1) & -bar.size(); // BARs are naturally aligned
            if (address + bar.size() > windowEnd || address < next) {
                throw new IllegalStateException("no room in the PCI MMIO window for the " + bar.size()
                        + "-byte BAR " + bar.index() + " of " + device.name());
            }
            config.setBarAddress(bar.index(), address);
            next = address + bar.size();
        }
        nextFree = next;
        slots[slot] = device;
        config.placedOn(windowStart, windowEnd, this::remapAfterRestore);
        // Firmware leaves decoding on, so the devices work even before the guest touches the command register.
        config.put(PciConfigSpace.COMMAND, 2, config.command() | PciConfigSpace.COMMAND_MEMORY);
        remap(slot);
        return slot;
    }

    /**
     * Writes the configuration address latch, for each slot after the host bridge's the vendor and
     * device ID of the function in it (all ones for none), and the host bridge's configuration space.
     */
    @Override
    public synchronized void saveState(StateWriter out) {
        out.i32(configAddress);
        out.i32(SLOTS);
        for (int slot = 1; slot < SLOTS; slot++) {
            out.i32(slots[slot] == null ? EMPTY_SLOT : slots[slot].config().get(PciConfigSpace.VENDOR_ID, 4));
        }
        slots[0].config().saveState(out);
    }

    /**
     * Takes the configuration address latch and the host bridge's configuration space, after checking
     * that every slot holds a function with the same vendor and device ID as at the save.
     */
    @Override
    public void restoreState(StateReader in) {
        int address = in.i32("the configuration address");
        int count = in.i32("the slot count");
        if (count != SLOTS) {
            throw in.fail("the snapshot's PCI bus has " + Integer.toUnsignedString(count) + " slots, and this one has " + SLOTS);
        }
        synchronized (this) {
            for (int slot = 1; slot < SLOTS; slot++) {
                int saved = in.i32("the identity of slot " + slot);
                int here = slots[slot] == null ? EMPTY_SLOT : slots[slot].config().get(PciConfigSpace.VENDOR_ID, 4);
                if (saved != here) {
                    throw in.fail("slot " + slot + " holds " + identity(saved) + " in the snapshot, and " + identity(here)
                            + (slots[slot] == null ? "" : " (" + slots[slot].name() + ")") + " in this VM");
                }
            }
            // Checks the host bridge's bytes before it takes them, so a refusal leaves the bus as it was.
            slots[0].config().restoreState(in);
            configAddress = address;
        }
    }

    private static String identity(int vendorAndDevice) {
        return vendorAndDevice == EMPTY_SLOT ? "no function"
                : String.format("function %04x:%04x", vendorAndDevice & 0xffff, vendorAndDevice >>> 16);
    }

    /** The device in {@code slot}, or null. */
    public synchronized PciDevice device(int slot) {
        return slots[slot];
    }

    @Override
    public int in(int offset, int size) {
        if (offset < 4) {
            return size == 4 ? configAddress() : -1;
        }
        PciDevice device = target();
        if (device == null) {
            return -1; // no function there: the read aborts with all ones
        }
        int register = configAddress() & 0xfc | (offset - 4);
        if ((register & (size - 1)) != 0) {
            return -1; // a misaligned access is not a configuration cycle
        }
        return device.config().read(register, size);
    }

    @Override
    public void out(int offset, int size, int value) {
        if (offset < 4) {
            if (size == 4 && offset == 0) { // byte writes to 0xCFB probe for mechanism #2, which is absent
                synchronized (this) {
                    configAddress = value;
                }
            }
            return;
        }
        PciDevice device = target();
        if (device == null) {
            return;
        }
        int register = configAddress() & 0xfc | (offset - 4);
        if ((register & (size - 1)) != 0) {
            return;
        }
        device.config().write(register, size, value);
        if (register < BAR_REGISTERS_END && register + size > PciConfigSpace.COMMAND) {
            remap(slotOf(device));
        }
    }

    private synchronized int configAddress() {
        return configAddress;
    }

    /** The bus-0, function-0 device the configuration address selects, or null. */
    private synchronized PciDevice target() {
        int address = configAddress;
        int bus = address >>> 16 & 0xff;
        int function = address >>> 8 & 0x7;
        if ((address & ENABLE) == 0 || bus != 0 || function != 0) {
            return null;
        }
        return slots[address >>> 11 & 0x1f];
    }

    private synchronized int slotOf(PciDevice device) {
        for (int slot = 0; slot < SLOTS; slot++) {
            if (slots[slot] == device) {
                return slot;
            }
        }
        throw new IllegalStateException(device.name() + " is not on the bus");
    }

    /** Brings the MMIO mappings of {@code slot}'s BARs in line with its configuration space. */
    private synchronized void remap(int slot) {
        remap(slot, slot, false);
    }

    /**
     * After a restore of any function's configuration space: brings every function's mappings in line
     * with its configuration space, as if each had been programmed on an empty bus. Mappings that
     * move are all taken down before any is put up, so functions restored one at a time can trade
     * places; while some are not yet restored, a BAR may collide with another's old place, which the
     * next restore sets right, so collisions are not warned about here.
     */
    private synchronized void remapAfterRestore() {
        remap(1, SLOTS - 1, true);
    }

    /**
     * Brings the mappings of slots {@code first} to {@code last} in line with their configuration
     * spaces: first takes down every mapping that moves or ends, then maps what should be, in slot
     * and BAR order, and tells each function of each BAR whose mapping changed.
     */
    private void remap(int first, int last, boolean restoring) {
        long[][] wanted = new long[SLOTS][];
        for (int slot = first; slot <= last; slot++) {
            PciDevice device = slots[slot];
            if (device == null) {
                continue;
            }
            PciConfigSpace config = device.config();
            boolean decoding = (config.command() & PciConfigSpace.COMMAND_MEMORY) != 0;
            wanted[slot] = new long[PciConfigSpace.BAR_COUNT];
            Arrays.fill(wanted[slot], -1);
            for (PciConfigSpace.Bar bar : config.bars()) {
                int i = bar.index();
                wanted[slot][i] = decoding ? config.barAddress(i) : -1;
                if (mapped[slot][i] != -1 && mapped[slot][i] != wanted[slot][i]) {
                    mmio.unregisterAt(mapped[slot][i]);
                    mapped[slot][i] = -1;
                    if (wanted[slot][i] == -1) {
                        device.barMapped(i, -1);
                    }
                }
            }
        }
        for (int slot = first; slot <= last; slot++) {
            if (wanted[slot] == null) {
                continue;
            }
            PciDevice device = slots[slot];
            for (PciConfigSpace.Bar bar : device.config().bars()) {
                int i = bar.index();
                long address = wanted[slot][i];
                if (address == -1 || address == mapped[slot][i]) {
                    continue;
                }
                if (address < windowStart || address + bar.size() > windowEnd || address + bar.size() < address) {
                    LOG.log(restoring ? Level.DEBUG : Level.WARNING, "{0}: BAR {1} moved to 0x{2}, outside the PCI window; it stays unmapped",
                            device.name(), i, Long.toHexString(address));
                    address = -1;
                } else {
                    try {
                        mmio.register(address, bar.size(), device.barHandler(i), device.name() + " BAR " + i);
                    } catch (IllegalArgumentException e) {
                        LOG.log(restoring ? Level.DEBUG : Level.WARNING, "{0}: BAR {1} at 0x{2} overlaps another device; it stays unmapped",
                                device.name(), i, Long.toHexString(address));
                        address = -1;
                    }
                }
                mapped[slot][i] = address;
                device.barMapped(i, address);
            }
        }
    }

    /** Device 0: the host bridge. Linux's mechanism #1 probe looks for its class code. */
    private static final class HostBridge implements PciDevice {
        private static final int VENDOR_INTEL = 0x8086;
        private static final int DEVICE_VIRTUAL_HOST_BRIDGE = 0x0d57;
        private static final int CLASS_HOST_BRIDGE = 0x060000;
        private final PciConfigSpace config = new PciConfigSpace(VENDOR_INTEL, DEVICE_VIRTUAL_HOST_BRIDGE, CLASS_HOST_BRIDGE, 0, 0, 0);

        @Override
        public String name() {
            return "PCI host bridge";
        }

        @Override
        public PciConfigSpace config() {
            return config;
        }

        @Override
        public MmioDevice barHandler(int index) {
            throw new IllegalArgumentException("the host bridge has no BARs");
        }
    }
}
