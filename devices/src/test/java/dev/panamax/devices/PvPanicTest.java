package dev.panamax.devices;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.devices.pci.PciBus;
import dev.panamax.vm.AddressBus;
import dev.panamax.vm.MmioDevice;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** pvpanic on a PCI bus, reached as Linux's driver reaches it: configuration space, then BAR 0. */
class PvPanicTest {
    private static final long WINDOW = 0xc000_0000L;

    private final AddressBus<MmioDevice> mmio = new AddressBus<>("MMIO bus");
    private final PciBus bus = new PciBus(mmio, WINDOW, WINDOW + 0x1000_0000L);
    private final List<Integer> events = new ArrayList<>();
    private PvPanic pvpanic;
    private int slot;

    @BeforeEach
    void setUp() {
        pvpanic = new PvPanic(events::add);
        slot = bus.add(pvpanic);
    }

    private int readConfig(int register) {
        bus.out(0, 4, 0x8000_0000 | slot << 11 | register);
        return bus.in(4, 4);
    }

    /** The register, found where the guest finds it: at BAR 0's address. */
    private MmioDevice register() {
        long bar = Integer.toUnsignedLong(readConfig(0x10)) & ~0xfL;
        AddressBus.Mapping<MmioDevice> mapping = mmio.find(bar);
        assertThat(mapping.base()).isEqualTo(bar);
        assertThat(mapping.size()).isEqualTo(PvPanic.BAR_SIZE);
        return mapping.device();
    }

    @Test
    void showsQemusPvpanicPciIdentityAndOneMemoryBar() {
        assertThat(readConfig(0x00)).isEqualTo(0x0011_1b36);
        assertThat(readConfig(0x08)).as("class 0x0880 (system, other), revision 1").isEqualTo(0x0880_0001);
        assertThat(readConfig(0x10) & 0xf).as("a 32-bit memory BAR").isZero();
        assertThat(readConfig(0x14)).as("no BAR 1").isZero();
    }

    @Test
    void readingTheRegisterGivesTheSupportedEventsAndMarksTheDriverSeen() {
        assertThat(pvpanic.driverSeen()).isFalse();
        assertThat(register().read(0, 1)).isEqualTo(PvPanic.PANICKED | PvPanic.CRASH_LOADED);
        assertThat(pvpanic.driverSeen()).isTrue();
        assertThat(register().read(1, 1)).as("past the register").isZero();
        assertThat(events).isEmpty();
        assertThat(pvpanic.panicked()).isFalse();
    }

    @Test
    void aPanickedWriteTellsTheListenerOnce() {
        register().write(0, 1, PvPanic.PANICKED);
        assertThat(events).containsExactly(PvPanic.PANICKED);
        assertThat(pvpanic.panicked()).isTrue();
        assertThat(pvpanic.events()).isEqualTo(PvPanic.PANICKED);
    }

    @Test
    void crashLoadedIsItsOwnEventAndBothBitsGiveBoth() {
        register().write(0, 1, PvPanic.CRASH_LOADED);
        assertThat(events).containsExactly(PvPanic.CRASH_LOADED);
        register().write(0, 1, PvPanic.PANICKED | PvPanic.CRASH_LOADED);
        assertThat(events).containsExactly(PvPanic.CRASH_LOADED, PvPanic.PANICKED, PvPanic.CRASH_LOADED);
    }

    @Test
    void unsupportedBitsZeroAndOtherOffsetsAreIgnored() {
        register().write(0, 1, 0);
        register().write(0, 1, 0x04 | 0x80); // PVPANIC_SHUTDOWN and a bit nobody defined
        register().write(1, 1, PvPanic.PANICKED); // not the register
        assertThat(events).isEmpty();
        register().write(0, 4, 0x0000_0104L); // only the register's byte counts: 0x04, unsupported
        assertThat(events).isEmpty();
        register().write(0, 1, 0x84 | PvPanic.PANICKED); // the supported bit of a mixed byte still counts
        assertThat(events).containsExactly(PvPanic.PANICKED);
    }

    @Test
    void stateKeepsTheEventsAndTheDriversReadAndRefusesUnknownEvents() {
        register().read(0, 1);
        register().write(0, 1, PvPanic.CRASH_LOADED);
        StateWriter out = new StateWriter();
        pvpanic.saveState(out);
        byte[] state = out.toByteArray();

        PvPanic restored = new PvPanic(events::add);
        new PciBus(new AddressBus<>("another MMIO bus"), WINDOW, WINDOW + 0x1000_0000L).add(restored);
        StateReader in = new StateReader(state, "the snapshot");
        restored.restoreState(in);
        in.end();
        assertThat(restored.events()).isEqualTo(PvPanic.CRASH_LOADED);
        assertThat(restored.driverSeen()).isTrue();

        byte[] hostile = state.clone();
        hostile[hostile.length - 2] = (byte) 0x84; // the events byte, before the driver flag
        assertThatThrownBy(() -> new PvPanic(events::add).restoreState(new StateReader(hostile, "the snapshot")))
                .isInstanceOf(StateFormatException.class).hasMessageContaining("0x84");
    }
}
