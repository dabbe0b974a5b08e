package dev.panamax.devices.pci;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/** Saving and restoring an MSI-X table, PBA and control bits. */
class MsixStateTest {
    private static final int VECTORS = 3;

    /** A function with an MSI-X capability over recording vectors. */
    private static final class Function {
        final PciConfigSpace config = new PciConfigSpace(0x1af4, 0x1042, 0, 1, 0, 0);
        final List<RecordingMsiVector> vectors = new ArrayList<>();
        final Msix msix;
        final int control;

        Function(int count) {
            msix = new Msix(config, count, 0, 0, 0x1000, () -> {
                RecordingMsiVector v = new RecordingMsiVector();
                vectors.add(v);
                return v;
            });
            control = config.get(0x34, 1) + 2;
        }

        void program(int vector, long address, int data, boolean masked) {
            msix.writeTable(16L * vector, 8, address);
            msix.writeTable(16L * vector + 8, 4, data);
            msix.writeTable(16L * vector + 12, 4, masked ? 1 : 0);
        }

        void control(boolean enable, boolean functionMask) {
            config.write(control, 2, (enable ? 1 << 15 : 0) | (functionMask ? 1 << 14 : 0));
        }

        /** Every dword of the table and the PBA, and the capability's control word, as the guest reads them. */
        List<Long> guestView() {
            List<Long> view = new ArrayList<>();
            for (int offset = 0; offset < Msix.tableSize(msix.vectors()); offset += 4) {
                view.add(msix.readTable(offset, 4));
            }
            for (int offset = 0; offset < Msix.pbaSize(msix.vectors()); offset += 4) {
                view.add(msix.readPba(offset, 4));
            }
            view.add((long) config.read(control, 2));
            return view;
        }

        /** The configuration space and then the MSI-X state, in that order, as a transport saves them. */
        byte[] save() {
            return new StateWriter().section("config", config).section("msix", msix).toByteArray();
        }

        void restore(byte[] state) {
            StateReader in = new StateReader(state, "the snapshot");
            in.section("config", config);
            in.section("msix", msix);
            in.end();
        }
    }

    private static byte[] msixState(Consumer<StateWriter> fields) {
        StateWriter out = new StateWriter();
        fields.accept(out);
        return out.toByteArray();
    }

    /** A well-formed state of {@value #VECTORS} vectors, with {@code control} for vector 1's control word and the given PBA. */
    private static void fields(StateWriter out, int size, int control, long pba, int enabled, int functionMasked) {
        out.i32(size);
        for (int v = 0; v < VECTORS; v++) {
            out.i32(0xfee0_0000).i32(0).i32(0x40 + v).i32(v == 1 ? control : 1);
        }
        out.i64(pba).u8(enabled).u8(functionMasked);
    }

    private static void restoreMsix(Msix msix, byte[] state) {
        StateReader in = new StateReader(state, "the snapshot");
        msix.restoreState(in);
        in.end();
    }

    @Test
    void aRestoredTableReadsAsSavedAndAPendingVectorIsDeliveredWhenUnmasked() {
        Function saved = new Function(VECTORS);
        saved.program(0, 0xfee0_1000L, 0x31, false);
        saved.program(1, 0xfee0_2000L, 0x32, true);
        saved.program(2, 0xfee0_3000L, 0x33, false);
        saved.control(true, false);
        saved.msix.signal(1); // masked: pending
        Function fresh = new Function(VECTORS);

        fresh.restore(saved.save());

        assertThat(fresh.guestView()).isEqualTo(saved.guestView());
        assertThat(fresh.msix.readPba(0, 8)).isEqualTo(0b10);
        assertThat(fresh.msix.enabled()).isTrue();
        assertThat(fresh.vectors).allSatisfy(v -> assertThat(v.events).isEmpty());
        // The same guest writes and device signals now do the same in both.
        for (Function f : List.of(saved, fresh)) {
            f.msix.writeTable(16 + 12, 4, 0);
            f.msix.signal(2);
        }
        assertThat(fresh.vectors.get(1).events).containsExactly("program fee02000/50", "signal");
        assertThat(fresh.vectors.get(2).events).containsExactly("program fee03000/51", "signal");
        assertThat(fresh.guestView()).isEqualTo(saved.guestView());
    }

    @Test
    void theFunctionMaskAndDisableAreRestored() {
        Function saved = new Function(VECTORS);
        saved.program(0, 0xfee0_1000L, 0x31, false);
        saved.control(true, true);
        saved.msix.signal(0);
        Function fresh = new Function(VECTORS);

        fresh.restore(saved.save());

        assertThat(fresh.msix.readPba(0, 8)).isEqualTo(1);
        assertThat(fresh.vectors.getFirst().events).isEmpty();
        fresh.control(true, false);
        assertThat(fresh.vectors.getFirst().events).containsExactly("program fee01000/49", "signal");

        Function disabled = new Function(VECTORS);
        disabled.control(true, false);
        disabled.restore(new Function(VECTORS).save());
        assertThat(disabled.msix.enabled()).isFalse();
        assertThat(disabled.config.read(disabled.control, 2)).isEqualTo(VECTORS - 1);
        disabled.program(0, 0xfee0_1000L, 0x31, false);
        disabled.msix.signal(0);
        assertThat(disabled.vectors.getFirst().events).isEmpty();
    }

    @Test
    void aWellFormedStateIsAcceptedAndItsControlBitsShowInTheCapability() {
        Function function = new Function(VECTORS);
        restoreMsix(function.msix, msixState(out -> fields(out, VECTORS, 0, 0b101, 1, 0)));
        assertThat(function.msix.readTable(16 + 8, 4)).isEqualTo(0x41);
        assertThat(function.msix.readPba(0, 8)).isEqualTo(0b101);
        assertThat(function.config.read(function.control, 2)).isEqualTo(1 << 15 | VECTORS - 1);
        restoreMsix(function.msix, msixState(out -> fields(out, VECTORS, 1, 0, 0, 1)));
        assertThat(function.config.read(function.control, 2)).isEqualTo(1 << 14 | VECTORS - 1);
    }

    @Test
    void aTableOfAnotherSizeIsRefused() {
        Msix msix = new Function(VECTORS).msix;
        assertThatThrownBy(() -> restoreMsix(msix, msixState(out -> fields(out, 4, 1, 0, 1, 0))))
                .isInstanceOf(StateFormatException.class)
                .hasMessage("the snapshot: the MSI-X table has 4 vectors in the snapshot, and this function's has 3");
        assertThatThrownBy(() -> restoreMsix(msix, msixState(out -> fields(out, -1, 1, 0, 1, 0))))
                .hasMessageContaining("has 4294967295 vectors in the snapshot");
    }

    @Test
    void reservedVectorControlBitsAreRefused() {
        Msix msix = new Function(VECTORS).msix;
        assertThatThrownBy(() -> restoreMsix(msix, msixState(out -> fields(out, VECTORS, 0x3, 0, 1, 0))))
                .hasMessage("the snapshot: MSI-X vector 1's vector control is 0x3; only its mask bit (1) can be set");
    }

    @Test
    void aPendingBitPastTheTableIsRefused() {
        Msix msix = new Function(VECTORS).msix;
        assertThatThrownBy(() -> restoreMsix(msix, msixState(out -> fields(out, VECTORS, 1, 1L << 40, 1, 0))))
                .hasMessage("the snapshot: MSI-X vector 40 is pending, past the table's 3 vectors");
    }

    @Test
    void aPendingVectorNothingMasksIsRefused() {
        Msix msix = new Function(VECTORS).msix;
        assertThatThrownBy(() -> restoreMsix(msix, msixState(out -> fields(out, VECTORS, 0, 0b010, 1, 0))))
                .hasMessage("the snapshot: MSI-X vector 1 is pending while MSI-X is enabled and neither the function nor the"
                        + " vector is masked: it would have been delivered");
        // Disabled, or masked either way, it may be pending.
        restoreMsix(msix, msixState(out -> fields(out, VECTORS, 0, 0b010, 0, 0)));
        restoreMsix(msix, msixState(out -> fields(out, VECTORS, 0, 0b010, 1, 1)));
        restoreMsix(msix, msixState(out -> fields(out, VECTORS, 1, 0b010, 1, 0)));
    }

    @Test
    void controlBitsMustBeBooleans() {
        Msix msix = new Function(VECTORS).msix;
        assertThatThrownBy(() -> restoreMsix(msix, msixState(out -> fields(out, VECTORS, 1, 0, 2, 0))))
                .hasMessage("the snapshot: the MSI-X enable bit is 2, not 0 or 1");
        assertThatThrownBy(() -> restoreMsix(msix, msixState(out -> fields(out, VECTORS, 1, 0, 1, 7))))
                .hasMessage("the snapshot: the MSI-X function mask is 7, not 0 or 1");
    }

    @Test
    void aTruncatedStateIsRefusedAndNothingChanges() {
        Function function = new Function(VECTORS);
        function.program(0, 0xfee0_1000L, 0x31, false);
        List<Long> before = function.guestView();
        byte[] whole = msixState(out -> fields(out, VECTORS, 1, 0, 1, 0));
        byte[] cut = java.util.Arrays.copyOf(whole, 4 + 16 * 2 + 10);

        assertThatThrownBy(() -> restoreMsix(function.msix, cut))
                .hasMessage("the snapshot: MSI-X vector 2's message data is cut off (4 bytes needed, 2 left)");
        assertThatThrownBy(() -> restoreMsix(function.msix, msixState(out -> fields(out, VECTORS, 1, 0, 1, 3))))
                .isInstanceOf(StateFormatException.class);
        assertThat(function.guestView()).isEqualTo(before);
    }

    @Test
    void aTableOfManyVectorsKeepsEveryPbaWord() {
        Function saved = new Function(130);
        saved.program(129, 0xfee0_1000L, 0x99, true);
        saved.program(64, 0xfee0_1000L, 0x98, true);
        saved.control(true, false);
        saved.msix.signal(129);
        saved.msix.signal(64);
        Function fresh = new Function(130);

        fresh.restore(saved.save());

        assertThat(fresh.guestView()).isEqualTo(saved.guestView());
        assertThat(fresh.msix.readPba(8, 8)).isEqualTo(1);
        assertThat(fresh.msix.readPba(16, 8)).isEqualTo(0b10);
    }
}
