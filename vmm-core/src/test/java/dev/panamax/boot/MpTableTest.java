package dev.panamax.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.sys.MappedMemory;
import dev.panamax.vm.GuestMemory;
import dev.panamax.x86.PhysicalLayout;
import org.junit.jupiter.api.Test;

class MpTableTest {
    @Test
    void tablesAreFoundByTheirSignaturesAndSumToZero() {
        try (GuestMemory memory = new GuestMemory()) {
            memory.addRegion(0, MappedMemory.anonymous(0x100000));
            MpTable.write(memory, 4);
            long base = PhysicalLayout.MP_TABLE;
            byte[] floating = new byte[16];
            memory.read(base, floating, 0, 16);
            assertThat(new String(floating, 0, 4)).isEqualTo("_MP_");
            assertThat(sum(floating)).isZero();

            long table = Integer.toUnsignedLong(memory.readInt(base + 4));
            int length = Short.toUnsignedInt(memory.readShort(table + 4));
            byte[] config = new byte[length];
            memory.read(table, config, 0, length);
            assertThat(new String(config, 0, 4)).isEqualTo("PCMP");
            assertThat(sum(config)).isZero();
            assertThat(length).isEqualTo(MpTable.size(4) - 16);

            int processors = 0;
            int bootProcessors = 0;
            for (int at = 44; at < length; ) {
                int type = config[at];
                if (type == 0) {
                    processors++;
                    assertThat(config[at + 1]).as("APIC ID").isEqualTo((byte) (processors - 1));
                    bootProcessors += (config[at + 3] & 2) != 0 ? 1 : 0;
                }
                at += type == 0 ? 20 : 8;
            }
            assertThat(processors).isEqualTo(4);
            assertThat(bootProcessors).isEqualTo(1);
            assertThat(Short.toUnsignedInt(memory.readShort(table + 34))).as("entry count").isEqualTo(4 + 1 + 1 + 16 + 2);
        }
    }

    @Test
    void cpuCountIsBounded() {
        try (GuestMemory memory = new GuestMemory()) {
            memory.addRegion(0, MappedMemory.anonymous(0x100000));
            assertThatThrownBy(() -> MpTable.write(memory, 255)).isInstanceOf(BootException.class);
        }
    }

    private static int sum(byte[] bytes) {
        int s = 0;
        for (byte b : bytes) {
            s += b;
        }
        return s & 0xff;
    }
}
