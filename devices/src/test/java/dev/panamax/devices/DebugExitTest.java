package dev.panamax.devices;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class DebugExitTest {

    private final List<Integer> codes = new ArrayList<>();
    private final DebugExit debugExit = new DebugExit(codes::add);

    @Test
    void aWriteEndsTheVmWithTheShiftedOddCodeOnce() {
        debugExit.out(0, 1, 0x10);
        debugExit.out(0, 1, 0x00);
        assertThat(codes).containsExactly(0x21);
    }

    @Test
    void theValueIsCutToTheAccessWidth() {
        debugExit.out(0, 1, 0x1FF);
        assertThat(codes).containsExactly(0x1FF);
        DebugExit wide = new DebugExit(codes::add);
        wide.out(0, 2, 0x12345);
        assertThat(codes).containsExactly(0x1FF, 0x468B);
    }

    @Test
    void zeroGivesExitCodeOne() {
        debugExit.out(0, 4, 0);
        assertThat(codes).containsExactly(1);
        assertThat(debugExit.in(0, 1)).isZero();
    }
}
