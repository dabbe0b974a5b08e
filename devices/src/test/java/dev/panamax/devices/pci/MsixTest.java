package dev.panamax.devices.pci;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class MsixTest {
    private final PciConfigSpace config = new PciConfigSpace(0x1af4, 0x1042, 0, 1, 0, 0);
    private final List<RecordingMsiVector> vectors = new ArrayList<>();
    private Msix msix;
    private int control;

    @BeforeEach
    void setUp() {
        msix = new Msix(config, 3, 0, 0, 0x1000, () -> {
            RecordingMsiVector v = new RecordingMsiVector();
            vectors.add(v);
            return v;
        });
        control = config.get(0x34, 1) + 2;
    }

    private void program(int vector, long address, int data, boolean masked) {
        msix.writeTable(16L * vector, 8, address);
        msix.writeTable(16L * vector + 8, 4, data);
        msix.writeTable(16L * vector + 12, 4, masked ? 1 : 0);
    }

    private void enable(boolean functionMask) {
        config.write(control, 2, 1 << 15 | (functionMask ? 1 << 14 : 0));
    }

    @Test
    void vectorsStartMaskedAndTheTableReadsBack() {
        assertThat(msix.readTable(12, 4)).isEqualTo(1);
        program(1, 0xfee0_1000L, 0x4041, false);
        assertThat(msix.readTable(16, 8)).isEqualTo(0xfee0_1000L);
        assertThat(msix.readTable(24, 4)).isEqualTo(0x4041);
        assertThat(msix.readTable(28, 4)).isZero();
        assertThat(msix.readTable(3, 4)).as("misaligned").isZero();
        assertThat(msix.readTable(48, 4)).as("past the table").isZero();
    }

    @Test
    void anEnabledUnmaskedVectorIsProgrammedOnceAndSignalled() {
        program(0, 0xfee0_0000L, 0x31, false);
        enable(false);
        msix.signal(0);
        msix.signal(0);
        assertThat(vectors.get(0).events).containsExactly("program fee00000/49", "signal", "signal");
        program(0, 0xfee0_2000L, 0x32, false);
        msix.signal(0);
        assertThat(vectors.get(0).events).endsWith("program fee02000/50", "signal");
    }

    @Test
    void disabledMsixDropsSignals() {
        program(0, 0xfee0_0000L, 0x31, false);
        msix.signal(0);
        msix.signal(7); // no such vector
        assertThat(vectors.get(0).events).isEmpty();
        assertThat(msix.readPba(0, 8)).isZero();
    }

    @Test
    void aMaskedVectorIsPendingUntilUnmasked() {
        program(2, 0xfee0_0000L, 0x33, true);
        enable(false);
        msix.signal(2);
        assertThat(vectors.get(2).events).isEmpty();
        assertThat(msix.readPba(0, 8)).isEqualTo(0b100);
        assertThat(msix.readPba(0, 4)).isEqualTo(0b100);
        msix.writeTable(16L * 2 + 12, 4, 0);
        assertThat(vectors.get(2).events).containsExactly("program fee00000/51", "signal");
        assertThat(msix.readPba(0, 8)).isZero();
    }

    @Test
    void theFunctionMaskHoldsEveryVector() {
        program(0, 0xfee0_0000L, 0x31, false);
        program(1, 0xfee0_0000L, 0x32, false);
        enable(true);
        msix.signal(0);
        msix.signal(1);
        assertThat(msix.readPba(0, 8)).isEqualTo(0b11);
        enable(false);
        assertThat(vectors.get(0).events).containsExactly("program fee00000/49", "signal");
        assertThat(vectors.get(1).events).containsExactly("program fee00000/50", "signal");
        assertThat(msix.enabled()).isTrue();
    }

    @Test
    void theTableSizeFieldIsReadOnly() {
        config.write(control, 2, 0xffff);
        assertThat(config.get(control, 2)).isEqualTo(0xc000 | 2);
    }

    @Test
    void closeReleasesEveryVector() {
        msix.close();
        assertThat(vectors).allSatisfy(v -> assertThat(v.events).containsExactly("close"));
    }
}
