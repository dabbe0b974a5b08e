package dev.panamax.devices.pci;

import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The 256-byte configuration space of a conventional PCI function (type 0 header): identity, the
 * command register, memory BARs and a capability list. Each byte has a write mask, so read-only
 * fields stay put and BAR sizing works as on hardware: after the guest writes all ones, a BAR reads
 * back the complement of its size minus one, with its type bits. Its saved state is the 256 bytes;
 * a restore takes only bytes whose read-only bits equal this function's. Thread-safe.
 */
public final class PciConfigSpace implements Stateful {
    public static final int SIZE = 256;

    static final int VENDOR_ID = 0x00;
    static final int COMMAND = 0x04;
    static final int STATUS = 0x06;
    static final int REVISION = 0x08;
    static final int CACHE_LINE_SIZE = 0x0c;
    static final int HEADER_TYPE = 0x0e;
    static final int BAR0 = 0x10;
    static final int SUBSYSTEM_VENDOR_ID = 0x2c;
    static final int CAPABILITIES_POINTER = 0x34;
    static final int INTERRUPT_LINE = 0x3c;
    static final int INTERRUPT_PIN = 0x3d;

    public static final int COMMAND_MEMORY = 1 << 1;
    public static final int COMMAND_BUS_MASTER = 1 << 2;
    private static final int COMMAND_INTX_DISABLE = 1 << 10;
    private static final int STATUS_CAPABILITIES = 1 << 4;
    /** The first byte after the standard header, where capabilities go. */
    private static final int CAPABILITIES_START = 0x40;

    public static final int BAR_COUNT = 6;
    private static final int BAR_64BIT = 0b100;
    private static final int BAR_PREFETCHABLE = 0b1000;

    /** Notified after the guest writes into a capability, with the offset relative to the capability. */
    public interface CapabilityListener {
        void written(int offset, int size);
    }

    /** A memory BAR: its size (a power of two, at least 4 KiB) and type. */
    public record Bar(int index, long size, boolean is64Bit, boolean prefetchable) {}

    private record Capability(int offset, int length, CapabilityListener listener) {}

    private final byte[] bytes = new byte[SIZE];
    private final byte[] writable = new byte[SIZE];
    private final Bar[] bars = new Bar[BAR_COUNT];
    private final List<Capability> capabilities = new ArrayList<>();
    private int nextCapability = CAPABILITIES_START;
    /** Where the bus that placed this function lets its BARs decode, and how it re-maps them; unset off a bus. */
    private long windowStart;
    private long windowEnd;
    private Runnable remap;

    /**
     * @param classCode base class, subclass and programming interface, as 0xBBSSPP
     */
    public PciConfigSpace(int vendorId, int deviceId, int classCode, int revision, int subsystemVendorId, int subsystemId) {
        put(VENDOR_ID, 2, vendorId);
        put(VENDOR_ID + 2, 2, deviceId);
        put(REVISION, 4, revision & 0xff | classCode << 8);
        put(SUBSYSTEM_VENDOR_ID, 2, subsystemVendorId);
        put(SUBSYSTEM_VENDOR_ID + 2, 2, subsystemId);
        // No INTx pin: Panamax's PCI functions interrupt through MSI-X only.
        put(INTERRUPT_PIN, 1, 0);
        mask(COMMAND, 2, COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE);
        mask(CACHE_LINE_SIZE, 2, 0xffff); // cache line size and latency timer are plain storage
        mask(INTERRUPT_LINE, 1, 0xff); // firmware's note of the IRQ, unused by the device
    }

    /**
     * Declares memory BAR {@code index} ({@code index + 1} too when 64-bit). Its address is set by
     * the bus that places it and may be moved by the guest.
     */
    public synchronized Bar addMemoryBar(int index, long size, boolean is64Bit, boolean prefetchable) {
        if (index < 0 || index >= BAR_COUNT || (is64Bit && index == BAR_COUNT - 1)) {
            throw new IllegalArgumentException("no BAR " + index + (is64Bit ? " for a 64-bit BAR" : ""));
        }
        if (Long.bitCount(size) != 1 || size < 4096 || (!is64Bit && size > 1L << 31)) {
            throw new IllegalArgumentException("BAR size " + size + " is not a power of two between 4 KiB and "
                    + (is64Bit ? "2^63" : "2 GiB"));
        }
        if (bars[index] != null || (is64Bit && bars[index + 1] != null) || (index > 0 && bars[index - 1] != null && bars[index - 1].is64Bit())) {
            throw new IllegalArgumentException("BAR " + index + " is already declared");
        }
        Bar bar = new Bar(index, size, is64Bit, prefetchable);
        bars[index] = bar;
        int type = (is64Bit ? BAR_64BIT : 0) | (prefetchable ? BAR_PREFETCHABLE : 0);
        put(BAR0 + 4 * index, 4, type);
        mask(BAR0 + 4 * index, 4, (int) ~(size - 1) & ~0xf);
        if (is64Bit) {
            mask(BAR0 + 4 * index + 4, 4, (int) (~(size - 1) >>> 32));
        }
        return bar;
    }

    /** The declared memory BARs. */
    public synchronized List<Bar> bars() {
        return Arrays.stream(bars).filter(b -> b != null).toList();
    }

    /** The guest-physical address BAR {@code index} holds now (meaningful while memory decoding is on). */
    public synchronized long barAddress(int index) {
        Bar bar = bars[index];
        long low = get(BAR0 + 4 * index, 4) & 0xffff_fff0L;
        return bar.is64Bit() ? low | (get(BAR0 + 4 * index + 4, 4) & 0xffff_ffffL) << 32 : low;
    }

    /** Places BAR {@code index} at {@code address}, as firmware does before the guest runs. */
    public synchronized void setBarAddress(int index, long address) {
        Bar bar = bars[index];
        if ((address & (bar.size() - 1)) != 0 || (!bar.is64Bit() && address >>> 32 != 0)) {
            throw new IllegalArgumentException("BAR " + index + " cannot be placed at 0x" + Long.toHexString(address));
        }
        put(BAR0 + 4 * index, 4, (int) address | (get(BAR0 + 4 * index, 4) & 0xf));
        if (bar.is64Bit()) {
            put(BAR0 + 4 * index + 4, 4, (int) (address >>> 32));
        }
    }

    public synchronized int command() {
        return get(COMMAND, 2);
    }

    /**
     * Appends a capability to the list: {@code body} is its content after the ID and next-pointer
     * bytes, {@code writableMask} (same length, or null for read-only) says which of its bits the
     * guest may change, and {@code listener} (or null) hears of guest writes.
     *
     * @return the capability's offset in configuration space
     */
    public synchronized int addCapability(int id, byte[] body, byte[] writableMask, CapabilityListener listener) {
        int length = 2 + body.length;
        int offset = nextCapability;
        if (offset + length > SIZE) {
            throw new IllegalArgumentException("configuration space has no room for a " + length + "-byte capability");
        }
        if (writableMask != null && writableMask.length != body.length) {
            throw new IllegalArgumentException("the capability's write mask is not as long as its body");
        }
        bytes[offset] = (byte) id;
        System.arraycopy(body, 0, bytes, offset + 2, body.length);
        if (writableMask != null) {
            System.arraycopy(writableMask, 0, writable, offset + 2, body.length);
        }
        // Link it: the header's pointer for the first, the previous capability's next byte otherwise.
        int link = capabilities.isEmpty() ? CAPABILITIES_POINTER : capabilities.getLast().offset() + 1;
        bytes[link] = (byte) offset;
        put(STATUS, 2, get(STATUS, 2) | STATUS_CAPABILITIES);
        capabilities.add(new Capability(offset, length, listener));
        nextCapability = (offset + length + 3) & ~3;
        return offset;
    }

    /**
     * Called by the bus that placed this function: with memory decoding on, a restored BAR must lie
     * in {@code [windowStart, windowEnd)}, and {@code remap} brings the bus's mappings in line after
     * a restore.
     */
    synchronized void placedOn(long windowStart, long windowEnd, Runnable remap) {
        this.windowStart = windowStart;
        this.windowEnd = windowEnd;
        this.remap = remap;
    }

    /** Writes the 256 bytes as the guest sees them: command, BAR addresses, interrupt line, capabilities. */
    @Override
    public synchronized void saveState(StateWriter out) {
        out.bytes(bytes);
    }

    /**
     * Takes the 256 bytes after checking them against this function: every read-only bit (identity,
     * class, BAR types and sizes, the capability list, writable fields' reserved bits) must equal this
     * function's, and with memory decoding on every BAR must lie in the window of the bus that placed
     * it. Then the bus maps the BARs where they were. Capability listeners are not called: the owners
     * of capabilities ({@link Msix}) restore their own state after this.
     */
    @Override
    public void restoreState(StateReader in) {
        byte[] saved = in.bytesOfSize(SIZE, "the configuration space");
        Runnable placed;
        synchronized (this) {
            for (int at = 0; at < SIZE; at++) {
                int readOnly = ~writable[at] & 0xff;
                if (((saved[at] ^ bytes[at]) & readOnly) != 0) {
                    throw in.fail(String.format("the read-only bits of %s (byte 0x%02x) are 0x%02x, and this function's are 0x%02x:"
                            + " the snapshot is of another device", fieldAt(at), at, saved[at] & readOnly, bytes[at] & readOnly));
                }
            }
            int command = (saved[COMMAND] & 0xff) | (saved[COMMAND + 1] & 0xff) << 8;
            if (remap != null && (command & COMMAND_MEMORY) != 0) {
                for (Bar bar : bars()) {
                    long address = barAddress(saved, bar);
                    if (address < windowStart || address > windowEnd - bar.size()) {
                        throw in.fail(String.format("BAR %d is at 0x%x with memory decoding on, outside the PCI window"
                                + " [0x%x, 0x%x) its %d bytes must lie in", bar.index(), address, windowStart, windowEnd, bar.size()));
                    }
                }
            }
            System.arraycopy(saved, 0, bytes, 0, SIZE);
            placed = remap;
        }
        if (placed != null) {
            placed.run();
        }
    }

    private static long barAddress(byte[] space, Bar bar) {
        long address = 0;
        for (int i = (bar.is64Bit() ? 8 : 4) - 1; i >= 0; i--) {
            address = address << 8 | (space[BAR0 + 4 * bar.index() + i] & 0xff);
        }
        return address & ~0xfL;
    }

    /** The field at {@code offset}, for messages. */
    private String fieldAt(int offset) {
        for (Capability c : capabilities) {
            if (offset >= c.offset() && offset < c.offset() + c.length()) {
                return String.format("the capability (ID 0x%02x) at 0x%02x", bytes[c.offset()] & 0xff, c.offset());
            }
        }
        if (offset >= BAR0 && offset < BAR0 + 4 * BAR_COUNT) {
            return "BAR " + (offset - BAR0) / 4;
        }
        return switch (offset) {
            case 0x00, 0x01 -> "the vendor ID";
            case 0x02, 0x03 -> "the device ID";
            case 0x04, 0x05 -> "the command register";
            case 0x06, 0x07 -> "the status register";
            case 0x08 -> "the revision ID";
            case 0x09, 0x0a, 0x0b -> "the class code";
            case 0x0e -> "the header type";
            case 0x2c, 0x2d -> "the subsystem vendor ID";
            case 0x2e, 0x2f -> "the subsystem ID";
            case CAPABILITIES_POINTER -> "the capabilities pointer";
            case INTERRUPT_PIN -> "the interrupt pin";
            default -> offset < CAPABILITIES_START ? "a reserved header byte" : "an unused byte";
        };
    }

    /** Reads {@code size} (1, 2 or 4) bytes at {@code offset}, little-endian; the device's own view. */
    public synchronized int get(int offset, int size) {
        checkAccess(offset, size);
        int value = 0;
        for (int i = size - 1; i >= 0; i--) {
            value = value << 8 | (bytes[offset + i] & 0xff);
        }
        return value;
    }

    /** Stores a value regardless of the write mask: for the device's read-only fields. */
    public synchronized void put(int offset, int size, int value) {
        checkAccess(offset, size);
        for (int i = 0; i < size; i++) {
            bytes[offset + i] = (byte) (value >>> (8 * i));
        }
    }

    /** A guest read. */
    public int read(int offset, int size) {
        return get(offset, size);
    }

    /**
     * A guest write: only writable bits change. Capability listeners run after the bytes are
     * stored, outside this object's lock, so they may read the space and take their own locks.
     */
    public void write(int offset, int size, int value) {
        checkAccess(offset, size);
        Capability touched = null;
        synchronized (this) {
            for (int i = 0; i < size; i++) {
                int at = offset + i;
                int mask = writable[at] & 0xff;
                bytes[at] = (byte) ((bytes[at] & ~mask) | ((value >>> (8 * i)) & mask));
            }
            for (Capability c : capabilities) {
                if (offset < c.offset() + c.length() && offset + size > c.offset()) {
                    touched = c;
                }
            }
        }
        if (touched != null && touched.listener() != null) {
            touched.listener().written(offset - touched.offset(), size);
        }
    }

    private void mask(int offset, int size, int mask) {
        for (int i = 0; i < size; i++) {
            writable[offset + i] = (byte) (mask >>> (8 * i));
        }
    }

    private static void checkAccess(int offset, int size) {
        if ((size != 1 && size != 2 && size != 4) || offset < 0 || offset + size > SIZE || (offset & (size - 1)) != 0) {
            throw new IllegalArgumentException("bad configuration space access: " + size + " bytes at 0x" + Integer.toHexString(offset));
        }
    }
}
