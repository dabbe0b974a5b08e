package dev.panamax.vm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class AddressBusTest {

    @Test
    void findsTheDeviceContainingAnAddress() {
        AddressBus<String> bus = new AddressBus<>("test bus");
        bus.register(0x3f8, 8, "uart", "COM1");
        bus.register(0x60, 1, "i8042-data", "i8042");
        bus.register(0x64, 1, "i8042-cmd", "i8042");
        assertThat(bus.find(0x3f8).device()).isEqualTo("uart");
        assertThat(bus.find(0x3ff).device()).isEqualTo("uart");
        assertThat(bus.find(0x400)).isNull();
        assertThat(bus.find(0x63)).isNull();
        assertThat(bus.find(0x64).base()).isEqualTo(0x64);
    }

    @Test
    void overlapsAndEmptyRangesAreRejected() {
        AddressBus<String> bus = new AddressBus<>("MMIO bus");
        bus.register(0x1000, 0x1000, "a", "device A");
        assertThatThrownBy(() -> bus.register(0x1fff, 2, "b", "device B"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("device B").hasMessageContaining("overlaps device A");
        assertThatThrownBy(() -> bus.register(0x500, 0, "c", "device C")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> bus.register(Long.MAX_VALUE, 2, "d", "device D")).isInstanceOf(IllegalArgumentException.class);
        bus.register(0x2000, 0x10, "e", "device E"); // adjacent is fine
        assertThat(bus.unregister("a")).isTrue();
        assertThat(bus.find(0x1000)).isNull();
        bus.register(0x3000, 0x10, "e", "device E, second window");
        assertThat(bus.unregisterAt(0x2000)).isTrue();
        assertThat(bus.find(0x2000)).isNull();
        assertThat(bus.find(0x3000).device()).as("the same device's other window stays").isEqualTo("e");
        assertThat(bus.unregisterAt(0x2000)).isFalse();
    }
}
