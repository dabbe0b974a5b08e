package dev.panamax.devices;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import org.junit.jupiter.api.Test;

class PostCodePortTest {
    private final PostCodePort port = new PostCodePort();

    private static void restore(PostCodePort port, byte[] state) {
        StateReader in = new StateReader(state, "the snapshot");
        port.restoreState(in);
        in.end();
    }

    @Test
    void readsReturnTheLastCodeWritten() {
        assertThat(port.in(0, 1)).isZero();
        port.out(0, 1, 0x1e5);
        assertThat(port.in(0, 1)).isEqualTo(0xe5);
        assertThat(port.lastCode()).isEqualTo(0xe5);
    }

    @Test
    void aRestoredPortReadsTheSavedCode() {
        port.out(0, 1, 0x42);
        StateWriter out = new StateWriter();
        port.saveState(out);
        PostCodePort fresh = new PostCodePort();

        restore(fresh, out.toByteArray());

        assertThat(fresh.in(0, 1)).isEqualTo(port.in(0, 1)).isEqualTo(0x42);
    }

    @Test
    void aMissingOrLongerStateIsRefused() {
        port.out(0, 1, 0x42);
        assertThatThrownBy(() -> restore(port, new byte[0]))
                .isInstanceOf(StateFormatException.class)
                .hasMessage("the snapshot: the last POST code is cut off (1 bytes needed, 0 left)");
        assertThatThrownBy(() -> restore(port, new byte[] {1, 2}))
                .hasMessage("the snapshot: 1 bytes left over after the last field");
    }
}
