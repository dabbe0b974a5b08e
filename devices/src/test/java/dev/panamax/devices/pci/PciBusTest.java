package dev.panamax.devices.pci;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vm.AddressBus;
import dev.panamax.vm.MmioDevice;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class PciBusTest {
    private static final long WINDOW = 0xc000_0000L;

    private final AddressBus<MmioDevice> mmio = new AddressBus<>("MMIO bus");
    private PciBus bus;
    private TestFunction function;

    /** A function with a 64-bit 16 KiB BAR 0 and a 32-bit 4 KiB BAR 2 that remembers what it is told. */
    static final class TestFunction implements PciDevice {
        final PciConfigSpace config = new PciConfigSpace(0x1af4, 0x1042, 0x018000, 1, 0x1af4, 0x40);
        final List<String> mappings = new ArrayList<>();
        final List<String> accesses = new ArrayList<>();

        TestFunction() {
            config.addMemoryBar(0, 0x4000, true, false);
            config.addMemoryBar(2, 0x1000, false, false);
        }

        @Override
        public String name() {
            return "test function";
        }

        @Override
        public PciConfigSpace config() {
            return config;
        }

        @Override
        public MmioDevice barHandler(int index) {
            return new MmioDevice() {
                @Override
                public long read(long offset, int size) {
                    accesses.add("read BAR " + index + " +" + offset);
                    return 0x5a;
                }

                @Override
                public void write(long offset, int size, long value) {
                    accesses.add("write BAR " + index + " +" + offset + " = " + value);
                }
            };
        }

        @Override
        public void barMapped(int index, long address) {
            mappings.add(index + "@" + Long.toHexString(address));
        }
    }

    @BeforeEach
    void setUp() {
        bus = new PciBus(mmio, WINDOW, WINDOW + 0x1000_0000L);
        function = new TestFunction();
    }

    private void select(int slot, int register) {
        bus.out(0, 4, 0x8000_0000 | slot << 11 | register);
    }

    private int readConfig(int slot, int register) {
        select(slot, register);
        return bus.in(4, 4);
    }

    private void writeConfig(int slot, int register, int value) {
        select(slot, register);
        bus.out(4, 4, value);
    }

    @Test
    void linuxMechanismOneProbeSeesTheAddressLatchAndTheHostBridge() {
        bus.out(3, 1, 0x01); // the mechanism #2 probe byte must not disturb the latch
        bus.out(0, 4, 0x8000_0000);
        assertThat(bus.in(0, 4)).isEqualTo(0x8000_0000);
        // pci_sanity_check: class word at 0x0a of 00:00.0 is "host bridge".
        select(0, 0x08);
        assertThat(bus.in(4 + 2, 2)).isEqualTo(0x0600);
        assertThat(readConfig(0, 0) & 0xffff).isEqualTo(0x8086);
    }

    @Test
    void emptySlotsOtherBusesAndFunctionsReadAllOnes() {
        assertThat(readConfig(5, 0)).isEqualTo(-1);
        bus.add(function);
        bus.out(0, 4, 0x8000_0000 | 1 << 16 | 1 << 11);
        assertThat(bus.in(4, 4)).isEqualTo(-1);
        bus.out(0, 4, 0x8000_0000 | 1 << 11 | 1 << 8);
        assertThat(bus.in(4, 4)).isEqualTo(-1);
        bus.out(0, 4, 1 << 11); // enable bit clear
        assertThat(bus.in(4, 4)).isEqualTo(-1);
    }

    @Test
    void barsArePlacedNaturallyAlignedInTheWindowAndMapped() {
        int slot = bus.add(function);
        assertThat(slot).isEqualTo(1);
        assertThat(readConfig(1, 0x10)).isEqualTo((int) WINDOW | 0b100);
        assertThat(readConfig(1, 0x14)).isZero();
        assertThat(readConfig(1, 0x18)).isEqualTo((int) (WINDOW + 0x4000));
        assertThat(function.mappings).containsExactly("0@c0000000", "2@c0004000");
        mmio.find(WINDOW + 0x10).device().read(0x10, 4);
        AddressBus.Mapping<MmioDevice> m = mmio.find(WINDOW + 0x4008);
        m.device().write(WINDOW + 0x4008 - m.base(), 4, 7);
        assertThat(function.accesses).containsExactly("read BAR 0 +16", "write BAR 2 +8 = 7");
    }

    @Test
    void barSizingReadsBackTheSizeMaskAndTypeAsLinuxExpects() {
        bus.add(function);
        writeConfig(1, 0x04, 0); // Linux turns decoding off while it sizes
        writeConfig(1, 0x10, -1);
        writeConfig(1, 0x14, -1);
        writeConfig(1, 0x18, -1);
        assertThat(readConfig(1, 0x10)).isEqualTo(0xffff_c004);
        assertThat(readConfig(1, 0x14)).isEqualTo(-1);
        assertThat(readConfig(1, 0x18)).isEqualTo(0xffff_f000);
        assertThat(readConfig(1, 0x1c)).as("an undeclared BAR").isZero();
        assertThat(function.mappings).endsWith("0@ffffffffffffffff", "2@ffffffffffffffff");
    }

    @Test
    void aBarMovedByTheGuestIsRemappedWhenDecodingComesBack() {
        bus.add(function);
        writeConfig(1, 0x04, 0);
        writeConfig(1, 0x18, (int) (WINDOW + 0x10_0000));
        assertThat(mmio.find(WINDOW + 0x4000)).isNull();
        writeConfig(1, 0x04, PciConfigSpace.COMMAND_MEMORY | PciConfigSpace.COMMAND_BUS_MASTER);
        assertThat(mmio.find(WINDOW + 0x10_0000)).isNotNull();
        assertThat(mmio.find(WINDOW)).isNotNull();
        assertThat(function.mappings).endsWith("0@c0000000", "2@c0100000");
    }

    @Test
    void aBarMovedOutsideTheWindowStaysUnmapped() {
        bus.add(function);
        writeConfig(1, 0x04, 0);
        writeConfig(1, 0x18, 0x1000); // into guest RAM
        writeConfig(1, 0x04, PciConfigSpace.COMMAND_MEMORY);
        assertThat(mmio.find(0x1000)).isNull();
        assertThat(function.mappings).endsWith("2@ffffffffffffffff");
    }

    @Test
    void readOnlyFieldsIgnoreWritesAndSubDwordAccessesWork() {
        bus.add(function);
        writeConfig(1, 0x00, 0);
        assertThat(readConfig(1, 0x00)).isEqualTo(0x1042_1af4);
        select(1, 0x3c);
        bus.out(4, 1, 11); // interrupt line is plain storage
        assertThat(bus.in(4, 1)).isEqualTo(11);
        assertThat(bus.in(5, 1)).as("no INTx pin").isZero();
        select(1, 0x00);
        assertThat(bus.in(5, 2)).as("misaligned").isEqualTo(-1);
    }

    @Test
    void capabilitiesFormAListFromThePointerAtFortyFourHex() {
        function.config.addCapability(0x09, new byte[] {1, 2}, null, null);
        new Msix(function.config, 3, 0, 0x2000, 0x3000, RecordingMsiVector::new);
        bus.add(function);
        assertThat(readConfig(1, 0x04) >>> 16 & 0x10).as("status: capability list").isEqualTo(0x10);
        int first = readConfig(1, 0x34) & 0xff;
        int header = readConfig(1, first);
        assertThat(header & 0xff).isEqualTo(0x09);
        int second = header >>> 8 & 0xff;
        int msix = readConfig(1, second);
        assertThat(msix & 0xff).isEqualTo(Msix.CAPABILITY_ID);
        assertThat(msix >>> 8 & 0xff).as("end of list").isZero();
        assertThat(msix >>> 16).as("table size - 1").isEqualTo(2);
        assertThat(readConfig(1, second + 4)).isEqualTo(0x2000);
        assertThat(readConfig(1, second + 8)).isEqualTo(0x3000);
    }

    @Test
    void slotsRunOut() {
        for (int i = 1; i < PciBus.SLOTS; i++) {
            bus.add(new PciDevice() {
                final PciConfigSpace config = new PciConfigSpace(1, 2, 0, 0, 0, 0);

                @Override
                public String name() {
                    return "empty";
                }

                @Override
                public PciConfigSpace config() {
                    return config;
                }

                @Override
                public MmioDevice barHandler(int index) {
                    throw new AssertionError();
                }
            });
        }
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> bus.add(function))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("no free PCI slot");
    }

    private static byte[] save(PciBus bus) {
        StateWriter out = new StateWriter();
        bus.saveState(out);
        return out.toByteArray();
    }

    private static void restore(PciBus bus, byte[] state) {
        StateReader in = new StateReader(state, "the snapshot");
        bus.restoreState(in);
        in.end();
    }

    @Test
    void aRestoredBusKeepsTheAddressLatchAndTheHostBridgesRegisters() {
        bus.add(function);
        writeConfig(0, 0x04, PciConfigSpace.COMMAND_BUS_MASTER);
        writeConfig(0, 0x3c, 0xff);
        select(1, 0x08); // the guest left the latch pointing at slot 1's class code
        PciBus fresh = new PciBus(new AddressBus<>("MMIO bus"), WINDOW, WINDOW + 0x1000_0000L);
        fresh.add(new TestFunction());

        restore(fresh, save(bus));

        assertThat(fresh.in(0, 4)).isEqualTo(bus.in(0, 4)).isEqualTo(0x8000_0808);
        assertThat(fresh.in(4, 4)).isEqualTo(bus.in(4, 4));
        for (int register = 0; register < PciConfigSpace.SIZE; register += 4) {
            fresh.out(0, 4, 0x8000_0000 | register);
            assertThat(fresh.in(4, 4)).as("host bridge register 0x%x", register).isEqualTo(readConfig(0, register));
        }
    }

    @Test
    void aBusWithOtherFunctionsIsRefusedAndKeepsItsState() {
        bus.add(function);
        select(1, 0);
        byte[] state = save(bus);
        PciBus empty = new PciBus(new AddressBus<>("MMIO bus"), WINDOW, WINDOW + 0x1000_0000L);
        assertThatThrownBy(() -> restore(empty, state))
                .isInstanceOf(StateFormatException.class)
                .hasMessage("the snapshot: slot 1 holds function 1af4:1042 in the snapshot, and no function in this VM");
        assertThat(empty.in(0, 4)).as("the latch is untouched").isZero();

        PciBus other = new PciBus(new AddressBus<>("MMIO bus"), WINDOW, WINDOW + 0x1000_0000L);
        other.add(function);
        other.add(new TestFunction());
        assertThatThrownBy(() -> restore(other, state))
                .hasMessage("the snapshot: slot 2 holds no function in the snapshot, and function 1af4:1042 (test function) in this VM");
    }

    @Test
    void aSlotCountOrHostBridgeOfAnotherBusIsRefused() {
        byte[] state = save(bus);
        byte[] slots = state.clone();
        slots[7] = 64; // the slot count, after the latch
        assertThatThrownBy(() -> restore(bus, slots))
                .hasMessage("the snapshot: the snapshot's PCI bus has 64 slots, and this one has 32");
        byte[] bridge = state.clone();
        bridge[8 + 4 * 31 + 4 + 0x0a] = 0x01; // the host bridge's subclass
        assertThatThrownBy(() -> restore(bus, bridge))
                .hasMessageContaining("the read-only bits of the class code (byte 0x0a) are 0x01, and this function's are 0x00");
    }
}
