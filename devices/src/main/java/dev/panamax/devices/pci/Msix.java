package dev.panamax.devices.pci;

import dev.panamax.vm.MsiVector;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.util.function.Supplier;

/**
 * An MSI-X capability with its vector table and pending-bit array (PBA), which live in a memory BAR
 * of the function. A device {@link #signal signals} a vector from its own thread: the message goes
 * out at once when MSI-X is enabled and neither the function nor the vector is masked, and is held
 * as a pending bit otherwise, then sent when the guest unmasks. Each vector is backed by an {@link
 * MsiVector} (in a VM, a KVM GSI route plus an irqfd), reprogrammed only when its message changed.
 * Thread-safe.
 *
 * <p>Saved state: the table, the PBA, and the enable and function-mask bits. A restore programs no
 * vector: as after the guest's own writes, a vector's route is set by its first delivery, from the
 * table entry then in force.
 */
public final class Msix implements AutoCloseable, Stateful {
    public static final int CAPABILITY_ID = 0x11;
    public static final int ENTRY_SIZE = 16;
    /** The largest table MSI-X allows. */
    public static final int MAX_VECTORS = 2048;

    private static final int CONTROL_ENABLE = 1 << 15;
    private static final int CONTROL_FUNCTION_MASK = 1 << 14;
    private static final int VECTOR_MASKED = 1;
    private static final String[] ENTRY_FIELDS = {"message address (low)", "message address (high)", "message data", "vector control"};

    private final PciConfigSpace config;
    private final int capability;
    private final int vectors;
    /** Four dwords per entry: address low, address high, data, vector control. */
    private final int[] table;
    private final long[] pending;
    private final MsiVector[] targets;
    /** The message each target was last programmed with; address -1 for never. */
    private final long[] programmedAddress;
    private final int[] programmedData;
    private boolean enabled;
    private boolean functionMasked;

    /**
     * Adds the capability to {@code config} and allocates {@code vectors} interrupt vectors.
     *
     * @param bar the BAR holding the table and the PBA
     * @param tableOffset the table's offset in that BAR (8-byte aligned)
     * @param pbaOffset the PBA's offset in that BAR (8-byte aligned)
     */
    public Msix(PciConfigSpace config, int vectors, int bar, int tableOffset, int pbaOffset, Supplier<MsiVector> allocator) {
        if (vectors < 1 || vectors > MAX_VECTORS) {
            throw new IllegalArgumentException("an MSI-X table has 1 to " + MAX_VECTORS + " vectors, not " + vectors);
        }
        if ((tableOffset & 7) != 0 || (pbaOffset & 7) != 0 || bar < 0 || bar >= PciConfigSpace.BAR_COUNT) {
            throw new IllegalArgumentException("the MSI-X table and PBA need 8-byte aligned offsets in BAR 0-5");
        }
        this.config = config;
        this.vectors = vectors;
        this.table = new int[4 * vectors];
        this.pending = new long[(vectors + 63) / 64];
        this.targets = new MsiVector[vectors];
        this.programmedAddress = new long[vectors];
        this.programmedData = new int[vectors];
        for (int v = 0; v < vectors; v++) {
            table[4 * v + 3] = VECTOR_MASKED; // every vector starts masked
            programmedAddress[v] = -1;
        }
        byte[] body = new byte[10];
        putShort(body, 0, vectors - 1);
        putInt(body, 2, tableOffset | bar);
        putInt(body, 6, pbaOffset | bar);
        byte[] writable = new byte[10];
        writable[1] = (byte) ((CONTROL_ENABLE | CONTROL_FUNCTION_MASK) >>> 8);
        this.capability = config.addCapability(CAPABILITY_ID, body, writable, (offset, size) -> controlWritten());
        try {
            for (int v = 0; v < vectors; v++) {
                targets[v] = allocator.get();
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    public int vectors() {
        return vectors;
    }

    /** Bytes of BAR space the table takes. */
    public static int tableSize(int vectors) {
        return ENTRY_SIZE * vectors;
    }

    /** Bytes of BAR space the PBA takes. */
    public static int pbaSize(int vectors) {
        return 8 * ((vectors + 63) / 64);
    }

    public synchronized boolean enabled() {
        return enabled;
    }

    /**
     * Raises {@code vector}, or marks it pending while masked. A vector outside the table, or MSI-X
     * still disabled, means the guest has not asked for this interrupt: it is dropped.
     */
    public synchronized void signal(int vector) {
        if (vector < 0 || vector >= vectors || !enabled) {
            return;
        }
        if (functionMasked || (table[4 * vector + 3] & VECTOR_MASKED) != 0) {
            pending[vector >>> 6] |= 1L << vector;
        } else {
            deliver(vector);
        }
    }

    /**
     * Writes the table size, each entry (address low, address high, data, vector control), the PBA's
     * 64-bit words, and the enable and function-mask bits.
     */
    @Override
    public synchronized void saveState(StateWriter out) {
        out.i32(vectors);
        for (int dword : table) {
            out.i32(dword);
        }
        for (long word : pending) {
            out.i64(word);
        }
        out.bool(enabled);
        out.bool(functionMasked);
    }

    /**
     * Takes the table, PBA and control bits after checking them: the table size must be this
     * function's, vector control words may hold the mask bit only, the PBA no bit past the table,
     * and no vector may be pending while nothing masks it (it would have been delivered). The
     * enable and function-mask bits go into the capability's control word too, so restore the
     * configuration space before this.
     */
    @Override
    public void restoreState(StateReader in) {
        int size = in.i32("the MSI-X table size");
        if (size != vectors) {
            throw in.fail("the MSI-X table has " + Integer.toUnsignedString(size) + " vectors in the snapshot, and this function's has "
                    + vectors);
        }
        int[] savedTable = new int[table.length];
        for (int v = 0; v < vectors; v++) {
            for (int d = 0; d < 4; d++) {
                savedTable[4 * v + d] = in.i32("MSI-X vector " + v + "'s " + ENTRY_FIELDS[d]);
            }
            int control = savedTable[4 * v + 3];
            if ((control & ~VECTOR_MASKED) != 0) {
                throw in.fail(String.format("MSI-X vector %d's vector control is 0x%x; only its mask bit (1) can be set", v, control));
            }
        }
        long[] savedPending = new long[pending.length];
        for (int w = 0; w < pending.length; w++) {
            savedPending[w] = in.i64("MSI-X pending bits " + 64 * w + "-" + (64 * w + 63));
        }
        boolean savedEnabled = in.bool("the MSI-X enable bit");
        boolean savedFunctionMasked = in.bool("the MSI-X function mask");
        for (int w = 0; w < pending.length; w++) {
            long beyond = vectors >= 64 * (w + 1) ? 0 : savedPending[w] & -(1L << (vectors - 64 * w));
            if (beyond != 0) {
                throw in.fail("MSI-X vector " + (64 * w + Long.numberOfTrailingZeros(beyond)) + " is pending, past the table's "
                        + vectors + " vectors");
            }
        }
        if (savedEnabled && !savedFunctionMasked) {
            for (int v = 0; v < vectors; v++) {
                if ((savedPending[v >>> 6] & 1L << v) != 0 && (savedTable[4 * v + 3] & VECTOR_MASKED) == 0) {
                    throw in.fail("MSI-X vector " + v + " is pending while MSI-X is enabled and neither the function nor the vector"
                            + " is masked: it would have been delivered");
                }
            }
        }
        int control = config.get(capability + 2, 2) & ~(CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
        config.put(capability + 2, 2, control | (savedEnabled ? CONTROL_ENABLE : 0) | (savedFunctionMasked ? CONTROL_FUNCTION_MASK : 0));
        synchronized (this) {
            System.arraycopy(savedTable, 0, table, 0, table.length);
            System.arraycopy(savedPending, 0, pending, 0, pending.length);
            enabled = savedEnabled;
            functionMasked = savedFunctionMasked;
        }
    }

    /** A guest read of the table at {@code offset} (relative to the table), 4 or 8 bytes aligned. */
    public synchronized long readTable(long offset, int size) {
        if (!validAccess(offset, size, tableSize(vectors))) {
            return 0;
        }
        int i = (int) (offset >>> 2);
        long value = table[i] & 0xffffffffL;
        return size == 8 ? value | (long) table[i + 1] << 32 : value;
    }

    /** A guest write of the table; other sizes and misaligned accesses are ignored, as the spec allows. */
    public synchronized void writeTable(long offset, int size, long value) {
        if (!validAccess(offset, size, tableSize(vectors))) {
            return;
        }
        int i = (int) (offset >>> 2);
        storeTableDword(i, (int) value);
        if (size == 8) {
            storeTableDword(i + 1, (int) (value >>> 32));
        }
    }

    /** A guest read of the PBA at {@code offset} (relative to the PBA); the PBA is read-only. */
    public synchronized long readPba(long offset, int size) {
        if (!validAccess(offset, size, pbaSize(vectors))) {
            return 0;
        }
        long qword = pending[(int) (offset >>> 3)];
        return size == 8 ? qword : qword >>> (8 * (offset & 4)) & 0xffffffffL;
    }

    private void storeTableDword(int i, int value) {
        int vector = i >>> 2;
        if ((i & 3) == 3) {
            boolean wasMasked = (table[i] & VECTOR_MASKED) != 0;
            table[i] = value & VECTOR_MASKED; // the other control bits are reserved
            if (wasMasked && (value & VECTOR_MASKED) == 0) {
                deliverIfPending(vector);
            }
        } else {
            table[i] = value;
        }
    }

    private void controlWritten() {
        int control = config.get(capability + 2, 2);
        synchronized (this) {
            enabled = (control & CONTROL_ENABLE) != 0;
            functionMasked = (control & CONTROL_FUNCTION_MASK) != 0;
            if (enabled && !functionMasked) {
                for (int v = 0; v < vectors; v++) {
                    deliverIfPending(v);
                }
            }
        }
    }

    private void deliverIfPending(int vector) {
        long bit = 1L << vector;
        if (enabled && !functionMasked && (table[4 * vector + 3] & VECTOR_MASKED) == 0 && (pending[vector >>> 6] & bit) != 0) {
            pending[vector >>> 6] &= ~bit;
            deliver(vector);
        }
    }

    private void deliver(int vector) {
        long address = (table[4 * vector] & 0xffffffffL) | (long) table[4 * vector + 1] << 32;
        int data = table[4 * vector + 2];
        if (address != programmedAddress[vector] || data != programmedData[vector]) {
            targets[vector].program(address, data);
            programmedAddress[vector] = address;
            programmedData[vector] = data;
        }
        targets[vector].signal();
    }

    private static boolean validAccess(long offset, int size, int length) {
        return (size == 4 || size == 8) && (offset & (size - 1)) == 0 && offset >= 0 && offset + size <= length;
    }

    /** Releases the vectors. */
    @Override
    public synchronized void close() {
        for (MsiVector target : targets) {
            if (target != null) {
                target.close();
            }
        }
    }

    private static void putShort(byte[] b, int at, int v) {
        b[at] = (byte) v;
        b[at + 1] = (byte) (v >>> 8);
    }

    private static void putInt(byte[] b, int at, int v) {
        putShort(b, at, v);
        putShort(b, at + 2, v >>> 16);
    }
}
