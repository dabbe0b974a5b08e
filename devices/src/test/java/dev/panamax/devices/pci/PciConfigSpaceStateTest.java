package dev.panamax.devices.pci;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.devices.pci.PciBusTest.TestFunction;
import dev.panamax.vm.AddressBus;
import dev.panamax.vm.MmioDevice;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Saving and restoring configuration spaces, and the bus mappings that follow them. */
class PciConfigSpaceStateTest {
    private static final long WINDOW = 0xc000_0000L;
    private static final long WINDOW_END = WINDOW + 0x1000_0000L;

    /** A bus with its functions, as a VM builds it. */
    private static final class Machine {
        final AddressBus<MmioDevice> mmio = new AddressBus<>("MMIO bus");
        final PciBus bus = new PciBus(mmio, WINDOW, WINDOW_END);
        final List<TestFunction> functions = new ArrayList<>();

        Machine(int count) {
            for (int i = 0; i < count; i++) {
                TestFunction f = new TestFunction();
                functions.add(f);
                bus.add(f);
            }
        }

        void writeConfig(int slot, int register, int value) {
            bus.out(0, 4, 0x8000_0000 | slot << 11 | register);
            bus.out(4, 4, value);
        }

        int readConfig(int slot, int register) {
            bus.out(0, 4, 0x8000_0000 | slot << 11 | register);
            return bus.in(4, 4);
        }

        /** Every dword of the slot's configuration space, as the guest reads it. */
        List<Integer> space(int slot) {
            List<Integer> dwords = new ArrayList<>();
            for (int register = 0; register < PciConfigSpace.SIZE; register += 4) {
                dwords.add(readConfig(slot, register));
            }
            return dwords;
        }

        List<String> mappings() {
            return mmio.mappings().stream().map(m -> m.name() + "@" + Long.toHexString(m.base())).toList();
        }

        byte[] save() {
            StateWriter out = new StateWriter();
            for (TestFunction f : functions) {
                out.section("function", f.config);
            }
            return out.toByteArray();
        }

        void restore(byte[] state) {
            StateReader in = new StateReader(state, "the snapshot");
            for (TestFunction f : functions) {
                in.section("function", f.config);
            }
            in.end();
        }
    }

    private static byte[] saveOne(PciConfigSpace config) {
        StateWriter out = new StateWriter();
        config.saveState(out);
        return out.toByteArray();
    }

    private static void restoreOne(PciConfigSpace config, byte[] state) {
        StateReader in = new StateReader(state, "the snapshot");
        config.restoreState(in);
        in.end();
    }

    /** {@code state} (one config space: length, then 256 bytes) with byte {@code offset} replaced. */
    private static byte[] withByte(byte[] state, int offset, int value) {
        byte[] changed = state.clone();
        changed[4 + offset] = (byte) value;
        return changed;
    }

    @Test
    void aRestoredFunctionReadsAsSavedAndItsMovedBarsAreMappedWhereTheGuestPutThem() {
        Machine saved = new Machine(1);
        saved.writeConfig(1, 0x04, 0);
        saved.writeConfig(1, 0x18, (int) (WINDOW + 0x20_0000));
        saved.writeConfig(1, 0x04, PciConfigSpace.COMMAND_MEMORY | PciConfigSpace.COMMAND_BUS_MASTER);
        saved.writeConfig(1, 0x3c, 10); // interrupt line
        saved.writeConfig(1, 0x0c, 0x2010); // cache line size, latency timer
        Machine fresh = new Machine(1);
        assertThat(fresh.space(1)).isNotEqualTo(saved.space(1));

        fresh.restore(saved.save());

        assertThat(fresh.space(1)).isEqualTo(saved.space(1));
        assertThat(fresh.mappings()).isEqualTo(saved.mappings()).contains("test function BAR 2@c0200000");
        assertThat(fresh.functions.getFirst().mappings).endsWith("2@c0200000");
    }

    @Test
    void functionsThatTradedPlacesAreMappedAsSavedWhicheverIsRestoredFirst() {
        Machine saved = new Machine(2);
        int bar2Of1 = saved.readConfig(1, 0x18);
        int bar2Of2 = saved.readConfig(2, 0x18);
        for (int slot = 1; slot <= 2; slot++) {
            saved.writeConfig(slot, 0x04, 0);
        }
        saved.writeConfig(1, 0x18, bar2Of2);
        saved.writeConfig(2, 0x18, bar2Of1);
        for (int slot = 1; slot <= 2; slot++) {
            saved.writeConfig(slot, 0x04, PciConfigSpace.COMMAND_MEMORY);
        }
        assertThat(saved.mappings()).hasSize(4);
        Machine fresh = new Machine(2);

        fresh.restore(saved.save());

        assertThat(fresh.mappings()).containsExactlyInAnyOrderElementsOf(saved.mappings());
        for (int slot = 1; slot <= 2; slot++) {
            assertThat(fresh.space(slot)).isEqualTo(saved.space(slot));
        }
    }

    @Test
    void decodingTurnedOffUnmapsTheBarsAndABarBeingSizedIsAccepted() {
        Machine saved = new Machine(1);
        saved.writeConfig(1, 0x04, 0);
        saved.writeConfig(1, 0x18, -1); // Linux sizes BARs with decoding off
        Machine fresh = new Machine(1);

        fresh.restore(saved.save());

        assertThat(fresh.mappings()).isEmpty();
        assertThat(fresh.readConfig(1, 0x18)).isEqualTo(0xffff_f000);
        assertThat(fresh.functions.getFirst().mappings).endsWith("0@ffffffffffffffff", "2@ffffffffffffffff");
    }

    @Test
    void anotherDevicesIdentityIsRefusedByName() {
        byte[] state = saveOne(new TestFunction().config);
        PciConfigSpace config = new TestFunction().config;
        assertThatThrownBy(() -> restoreOne(config, withByte(state, 0x00, 0xf5)))
                .isInstanceOf(StateFormatException.class)
                .hasMessage("the snapshot: the read-only bits of the vendor ID (byte 0x00) are 0xf5, and this function's are 0xf4:"
                        + " the snapshot is of another device");
        assertThatThrownBy(() -> restoreOne(config, withByte(state, 0x02, 0x43)))
                .hasMessageContaining("the device ID (byte 0x02)");
        assertThatThrownBy(() -> restoreOne(config, withByte(state, 0x0b, 0x02)))
                .hasMessageContaining("the class code (byte 0x0b)");
        assertThatThrownBy(() -> restoreOne(config, withByte(state, 0x2e, 0x41)))
                .hasMessageContaining("the subsystem ID (byte 0x2e)");
        assertThatThrownBy(() -> restoreOne(config, withByte(state, 0x3d, 1)))
                .hasMessageContaining("the interrupt pin (byte 0x3d)");
    }

    @Test
    void readOnlyBitsOfWritableRegistersMustMatch() {
        byte[] state = saveOne(new TestFunction().config);
        PciConfigSpace config = new TestFunction().config;
        assertThatThrownBy(() -> restoreOne(config, withByte(state, 0x04, 0x01))) // I/O space decoding: never writable
                .hasMessageContaining("the command register (byte 0x04) are 0x01, and this function's are 0x00");
        assertThatThrownBy(() -> restoreOne(config, withByte(state, 0x10, 0x00))) // BAR 0 typed 32-bit
                .hasMessageContaining("BAR 0 (byte 0x10) are 0x00, and this function's are 0x04");
        assertThatThrownBy(() -> restoreOne(config, withByte(state, 0x19, 0x08))) // BAR 2 not aligned to its 4 KiB
                .hasMessageContaining("BAR 2 (byte 0x19)");
        assertThatThrownBy(() -> restoreOne(config, withByte(state, 0x06, 0x10))) // a capability list it has not
                .hasMessageContaining("the status register (byte 0x06) are 0x10, and this function's are 0x00");
    }

    @Test
    void aBarOfAnotherSizeIsRefused() {
        PciConfigSpace small = new PciConfigSpace(0x1af4, 0x1042, 0x018000, 1, 0x1af4, 0x40);
        small.addMemoryBar(0, 0x4000, true, false);
        small.addMemoryBar(2, 0x1000, false, false);
        PciConfigSpace large = new PciConfigSpace(0x1af4, 0x1042, 0x018000, 1, 0x1af4, 0x40);
        large.addMemoryBar(0, 0x4000, true, false);
        large.addMemoryBar(2, 0x2000, false, false);
        small.setBarAddress(2, 0x1000);

        assertThatThrownBy(() -> restoreOne(large, saveOne(small)))
                .hasMessageContaining("BAR 2 (byte 0x19) are 0x10, and this function's are 0x00");
    }

    @Test
    void aCapabilitysReadOnlyBytesMustMatch() {
        TestFunction saved = new TestFunction();
        int offset = saved.config.addCapability(0x09, new byte[] {1, 2}, new byte[] {(byte) 0xff, 0}, null);
        TestFunction fresh = new TestFunction();
        fresh.config.addCapability(0x09, new byte[] {1, 2}, new byte[] {(byte) 0xff, 0}, null);
        saved.config.write(offset + 2, 1, 0x77); // a writable capability byte
        byte[] state = saveOne(saved.config);

        restoreOne(fresh.config, state);
        assertThat(fresh.config.read(offset, 4)).isEqualTo(saved.config.read(offset, 4)).isEqualTo(0x0277_0009);
        assertThatThrownBy(() -> restoreOne(fresh.config, withByte(state, offset + 3, 5)))
                .hasMessageContaining(String.format("the capability (ID 0x09) at 0x%02x (byte 0x%02x)", offset, offset + 3));
        assertThatThrownBy(() -> restoreOne(fresh.config, withByte(state, 0xf0, 1)))
                .hasMessageContaining("an unused byte (byte 0xf0)");
        assertThatThrownBy(() -> restoreOne(fresh.config, withByte(state, 0x34, 0x50)))
                .hasMessageContaining("the capabilities pointer (byte 0x34)");
    }

    @Test
    void aDecodedBarOutsideTheWindowIsRefusedAndNothingChanges() {
        Machine saved = new Machine(1);
        saved.writeConfig(1, 0x04, 0);
        saved.writeConfig(1, 0x18, 0x1000); // guest RAM: the bus leaves it unmapped
        saved.writeConfig(1, 0x04, PciConfigSpace.COMMAND_MEMORY);
        Machine fresh = new Machine(1);
        List<Integer> before = fresh.space(1);
        List<String> mappedBefore = fresh.mappings();

        assertThatThrownBy(() -> fresh.restore(saved.save()))
                .hasMessage("section function of the snapshot: BAR 2 is at 0x1000 with memory decoding on, outside the PCI window"
                        + " [0xc0000000, 0xd0000000) its 4096 bytes must lie in");
        assertThat(fresh.space(1)).isEqualTo(before);
        assertThat(fresh.mappings()).isEqualTo(mappedBefore);
    }

    @Test
    void aBarJustPastTheWindowIsRefused() {
        TestFunction saved = new TestFunction();
        saved.config.setBarAddress(0, WINDOW_END);
        saved.config.put(PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_MEMORY);
        Machine fresh = new Machine(1);

        assertThatThrownBy(() -> restoreOne(fresh.functions.getFirst().config, saveOne(saved.config)))
                .hasMessageContaining("BAR 0 is at 0xd0000000 with memory decoding on");
    }

    @Test
    void aTruncatedOrOversizedSpaceIsRefused() {
        StateWriter out = new StateWriter().bytes(new byte[255]);
        PciConfigSpace config = new TestFunction().config;
        assertThatThrownBy(() -> restoreOne(config, out.toByteArray()))
                .hasMessage("the snapshot: the configuration space is 255 bytes, not 256");
    }
}
