package dev.panamax.devices;

import static dev.panamax.devices.I8042.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vm.VmExit;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Saving and restoring the i8042: configuration, waiting commands, output queue and interrupt line. */
class I8042StateTest {

    /** A controller with its line and the exits it asked for. */
    private static final class Controller {
        final RecordingInterruptLine irq = new RecordingInterruptLine();
        final List<VmExit> exits = new ArrayList<>();
        final I8042 kbc = new I8042(irq, exits::add);

        int status() {
            return kbc.commandPort().in(0, 1);
        }

        int data() {
            return kbc.dataPort().in(0, 1);
        }

        void command(int c) {
            kbc.commandPort().out(0, 1, c);
        }

        void writeData(int d) {
            kbc.dataPort().out(0, 1, d);
        }

        byte[] save() {
            StateWriter out = new StateWriter();
            kbc.saveState(out);
            return out.toByteArray();
        }

        void restore(byte[] state) {
            StateReader in = new StateReader(state, "the snapshot");
            kbc.restoreState(in);
            in.end();
        }

        /** Reads the status and every queued byte, with the line level after each. */
        void drain(List<String> reads) {
            for (int i = 0; i < OUTPUT_QUEUE + 1; i++) {
                reads.add("status " + Integer.toHexString(status()) + " data " + Integer.toHexString(data()) + " line " + irq.asserted());
            }
        }

        /**
         * What the guest sees: the status, the queue, then the answers to the controller's read
         * commands and the keyboard's scan set query, after finishing any command left waiting.
         */
        List<String> guestReads() {
            List<String> reads = new ArrayList<>();
            reads.add("status " + Integer.toHexString(status()) + " line " + irq.asserted());
            writeData(0x02); // the data byte of whatever command waits: LEDs here
            drain(reads);
            for (int c : new int[] {CMD_READ_CTR, CMD_READ_MODE, CMD_READ_OUTPUT_PORT}) {
                command(c);
                drain(reads);
            }
            writeData(KBD_SCAN_SET);
            writeData(0);
            drain(reads);
            reads.add("ctrl-alt-del " + kbc.sendCtrlAltDel());
            drain(reads);
            return reads;
        }
    }

    /** A controller driven by the guest far from its reset state, with bytes queued and a command waiting. */
    private static Controller busyController() {
        Controller c = new Controller();
        c.command(CMD_WRITE_CTR);
        c.writeData(CTR_KBDINT | CTR_SYS); // translation off
        c.command(CMD_WRITE_MODE);
        c.writeData(0x21);
        c.command(CMD_A20_DISABLE);
        c.writeData(KBD_SCAN_SET);
        c.writeData(3);
        c.writeData(KBD_GET_ID);
        c.data(); // the guest read one byte of those queued
        c.writeData(KBD_DISABLE);
        c.writeData(KBD_SET_LEDS); // the keyboard waits for the LED byte
        return c;
    }

    @Test
    void aRestoredControllerAnswersAsSavedAndRaisesItsLineAgain() {
        Controller saved = busyController();
        assertThat(saved.irq.asserted()).isTrue();
        Controller fresh = new Controller();

        fresh.restore(saved.save());

        assertThat(fresh.irq.changes()).containsExactly(true);
        assertThat(fresh.kbc.configuration()).isEqualTo(CTR_KBDINT | CTR_SYS);
        List<String> expected = saved.guestReads();
        assertThat(fresh.guestReads()).isEqualTo(expected);
        assertThat(expected).contains("status 15 data 3 line false", "ctrl-alt-del false"); // scan set 3, scanning off
        assertThat(fresh.exits).isEmpty();
    }

    @Test
    void aControllerCommandWaitingForItsDataByteSurvives() {
        Controller saved = new Controller();
        saved.command(CMD_WRITE_OUTPUT_PORT);
        Controller fresh = new Controller();

        fresh.restore(saved.save());

        assertThat(fresh.status() & STATUS_CMD).isEqualTo(STATUS_CMD);
        fresh.writeData(OUTPUT_PORT_A20); // reset bit clear: the guest resets the machine
        assertThat(fresh.exits).singleElement().extracting(VmExit::reason).isEqualTo(VmExit.Reason.RESET);
        assertThat(fresh.irq.changes()).isEmpty();
    }

    /** {@code state} with byte {@code offset} replaced. */
    private static byte[] with(byte[] state, int offset, int value) {
        byte[] changed = state.clone();
        changed[offset] = (byte) value;
        return changed;
    }

    private static void refused(byte[] state, String message) {
        Controller target = busyController();
        List<String> before = busyController().guestReads();
        assertThatThrownBy(() -> target.restore(state)).isInstanceOf(StateFormatException.class).hasMessage(message);
        assertThat(target.guestReads()).as("nothing taken").isEqualTo(before);
    }

    @Test
    void waitingCommandsThatTakeNoDataAreRefused() {
        byte[] state = new Controller().save();
        refused(with(state, 3, CMD_SELF_TEST), "the snapshot: the pending controller command is 0xaa, which takes no data byte");
        refused(with(state, 4, KBD_RESET), "the snapshot: the pending keyboard command is 0xff, which takes no parameter");
    }

    @Test
    void aScanSetOtherThanOneToThreeIsRefused() {
        byte[] state = new Controller().save();
        refused(with(state, 7, 0), "the snapshot: the scan code set is 0, not 1, 2 or 3");
        refused(with(state, 7, 4), "the snapshot: the scan code set is 4, not 1, 2 or 3");
    }

    @Test
    void flagsMustBeBooleans() {
        byte[] state = new Controller().save();
        refused(with(state, 5, 2), "the snapshot: the command flag is 2, not 0 or 1");
        refused(with(state, 6, 9), "the snapshot: the keyboard's scanning flag is 9, not 0 or 1");
        refused(with(state, state.length - 1, 3), "the snapshot: the interrupt line level is 3, not 0 or 1");
    }

    @Test
    void anOverlongQueueIsRefused() {
        byte[] state = new StateWriter().u8(0x45).u8(3).u8(0).u8(0).u8(0).u8(0).u8(1).u8(2).bytes(new byte[17]).u8(0).u8(1)
                .toByteArray();
        refused(state, "the snapshot: the output queue count is 17, more than the 16 allowed");
        byte[] full = new StateWriter().u8(0x45).u8(3).u8(0).u8(0).u8(0).u8(0).u8(1).u8(2).bytes(new byte[16]).u8(0).u8(1)
                .toByteArray();
        refused(Arrays.copyOf(full, 20), "the snapshot: the output queue is cut off (16 bytes needed, 8 left)");
    }

    @Test
    void aLineLevelTheQueueDoesNotMakeIsRefused() {
        byte[] quiet = new Controller().save();
        refused(with(quiet, quiet.length - 1, 1), "the snapshot: the interrupt line is saved high, and the saved queue and"
                + " configuration byte make it low");
        byte[] busy = busyController().save();
        refused(with(busy, busy.length - 1, 0), "the snapshot: the interrupt line is saved low, and the saved queue and"
                + " configuration byte make it high");
        // Interrupts off in the configuration byte: a full queue leaves the line low.
        refused(with(with(busy, 0, CTR_SYS), busy.length - 1, 1), "the snapshot: the interrupt line is saved high, and the saved"
                + " queue and configuration byte make it low");
    }
}
