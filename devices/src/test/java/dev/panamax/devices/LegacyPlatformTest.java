package dev.panamax.devices;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vm.AddressBus;
import dev.panamax.vm.PortIoDevice;
import dev.panamax.vm.VmExit;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class LegacyPlatformTest {

    private final AddressBus<PortIoDevice> ports = new AddressBus<>("port I/O bus");
    private final Map<Integer, RecordingInterruptLine> irqs = new HashMap<>();
    private final List<VmExit> exits = new ArrayList<>();
    private final ByteArrayOutputStream console = new ByteArrayOutputStream();
    private final LegacyPlatform platform = LegacyPlatform.install(ports,
            irq -> irqs.computeIfAbsent(irq, i -> new RecordingInterruptLine()), exits::add, console);

    /** A guest IN, routed as the vCPU exit handler routes it. */
    private int in(int port) {
        AddressBus.Mapping<PortIoDevice> m = ports.find(port);
        assertThat(m).as("device at port 0x%x", port).isNotNull();
        return m.device().in((int) (port - m.base()), 1);
    }

    private void out(int port, int value) {
        AddressBus.Mapping<PortIoDevice> m = ports.find(port);
        assertThat(m).as("device at port 0x%x", port).isNotNull();
        m.device().out((int) (port - m.base()), 1, value);
    }

    @Test
    void devicesSitAtTheirStandardPorts() {
        for (char c : "ok\n".toCharArray()) {
            out(0x3F8, c);
        }
        assertThat(console.toString(StandardCharsets.US_ASCII)).isEqualTo("ok\n");
        assertThat(in(0x3FD) & 0x60).isEqualTo(0x60);

        out(0x64, 0xAA);
        assertThat(in(0x64) & 0x01).isEqualTo(1);
        assertThat(in(0x60)).isEqualTo(0x55);

        out(0x70, 0x0D);
        assertThat(in(0x71)).isEqualTo(0x80);

        out(0x80, 0x42);
        assertThat(platform.postCodes().lastCode()).isEqualTo(0x42);
        out(0x440, BootTimer.MAGIC);
        assertThat(platform.bootTimer().timeToUserSpace()).isPresent();

        assertThat(ports.find(0x61)).as("PIT speaker port left to KVM").isNull();
        assertThat(ports.find(0x40)).isNull();
        assertThat(ports.find(0x20)).isNull();
    }

    @Test
    void interruptsGoToTheStandardIsaLines() {
        out(0x3F9, 0x01); // COM1 IER: received data
        platform.com1().receive('x');
        assertThat(irqs.get(4).asserted()).isTrue();
        assertThat(irqs.get(1).asserted()).isFalse();
        out(0x64, 0x20); // i8042: read CTR, keyboard interrupt enabled by default
        assertThat(irqs.get(1).asserted()).isTrue();
        assertThat(irqs.keySet()).containsExactlyInAnyOrder(1, 4);
    }

    @Test
    void theKeyboardControllerResetEndsTheVm() {
        out(0x64, 0xFE);
        assertThat(exits).singleElement().extracting(VmExit::reason).isEqualTo(VmExit.Reason.RESET);
    }

    @Test
    void installingTwiceOnOneBusIsRefused() {
        assertThatThrownBy(() -> LegacyPlatform.install(ports, i -> new RecordingInterruptLine(), e -> { }, null))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("COM1");
    }
}
