package dev.panamax.boot;

import dev.panamax.vm.GuestMemory;
import dev.panamax.x86.PhysicalLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The Intel MultiProcessor Specification 1.4 tables, which tell a guest without ACPI how many CPUs
 * it has and where its IOAPIC is: a floating pointer, then a configuration table with one
 * processor entry per vCPU (APIC ID = vCPU index), the ISA bus, the IOAPIC, ISA IRQs 0-15 wired to
 * IOAPIC pins 0-15 (as KVM's default GSI routing does), LINT0 as ExtINT and LINT1 as NMI.
 */
public final class MpTable {
    private MpTable() {}

    /** 8-bit APIC IDs, one taken by the IOAPIC. */
    public static final int MAX_CPUS = 254;
    private static final int ISA_IRQS = 16;
    private static final int APIC_VERSION = 0x14;

    /** Bytes the tables take for {@code cpus} vCPUs. */
    public static int size(int cpus) {
        return 16 + 44 + 20 * cpus + 8 + 8 + 8 * ISA_IRQS + 8 * 2;
    }

    /** Writes the tables at {@link PhysicalLayout#MP_TABLE}. */
    public static void write(GuestMemory memory, int cpus) {
        if (cpus < 1 || cpus > MAX_CPUS) {
            throw new BootException("the MP table describes 1 to " + MAX_CPUS + " vCPUs, not " + cpus);
        }
        long base = PhysicalLayout.MP_TABLE;
        ByteBuffer b = ByteBuffer.allocate(size(cpus)).order(ByteOrder.LITTLE_ENDIAN);
        int ioapicId = cpus;
        long configTable = base + 16;

        // MP floating pointer structure
        b.put(ascii("_MP_")).putInt((int) configTable).put((byte) 1).put((byte) 4).put((byte) 0);
        b.put(new byte[5]); // feature bytes: 0 = a configuration table follows
        b.put(10, checksum(b.array(), 0, 16));

        // Configuration table header; length, count and checksum filled in below
        int header = b.position();
        b.put(ascii("PCMP")).putShort((short) 0).put((byte) 4).put((byte) 0);
        b.put(ascii("PANAMAX ")).put(ascii("MICROVM     "));
        b.putInt(0).putShort((short) 0).putShort((short) 0).putInt((int) PhysicalLayout.LAPIC_ADDRESS);
        b.putShort((short) 0).put((byte) 0).put((byte) 0);
        int entries = 0;

        for (int cpu = 0; cpu < cpus; cpu++) {
            int flags = 1 | (cpu == 0 ? 2 : 0); // enabled, bootstrap processor
            b.put((byte) 0).put((byte) cpu).put((byte) APIC_VERSION).put((byte) flags);
            b.putInt(0x600).putInt(0x201).putLong(0); // signature: family 6; features: FPU, APIC
            entries++;
        }
        b.put((byte) 1).put((byte) 0).put(ascii("ISA   "));
        entries++;
        b.put((byte) 2).put((byte) ioapicId).put((byte) 0x11).put((byte) 1).putInt((int) PhysicalLayout.IOAPIC_ADDRESS);
        entries++;
        for (int irq = 0; irq < ISA_IRQS; irq++) {
            b.put((byte) 3).put((byte) 0).putShort((short) 0).put((byte) 0).put((byte) irq).put((byte) ioapicId).put((byte) irq);
            entries++;
        }
        // Local interrupts: LINT0 of every local APIC is ExtINT (the PIC), LINT1 is NMI.
        b.put((byte) 4).put((byte) 3).putShort((short) 0).put((byte) 0).put((byte) 0).put((byte) 0xff).put((byte) 0);
        b.put((byte) 4).put((byte) 1).putShort((short) 0).put((byte) 0).put((byte) 0).put((byte) 0xff).put((byte) 1);
        entries += 2;

        int length = b.position() - header;
        b.putShort(header + 4, (short) length);
        b.putShort(header + 34, (short) entries);
        b.put(header + 7, checksum(b.array(), header, length));
        memory.write(base, b.array());
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    /** The byte that makes {@code [offset, offset + length)} sum to zero (the byte's own slot holds 0). */
    static byte checksum(byte[] bytes, int offset, int length) {
        int sum = 0;
        for (int i = offset; i < offset + length; i++) {
            sum += bytes[i];
        }
        return (byte) -sum;
    }
}
