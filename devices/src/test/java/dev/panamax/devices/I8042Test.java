package dev.panamax.devices;

import static dev.panamax.devices.I8042.*;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.vm.VmExit;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class I8042Test {

    private final RecordingInterruptLine irq = new RecordingInterruptLine();
    private final List<VmExit> exits = new ArrayList<>();
    private final I8042 kbc = new I8042(irq, exits::add);

    private int status() {
        return kbc.commandPort().in(0, 1);
    }

    private int data() {
        return kbc.dataPort().in(0, 1);
    }

    private void command(int c) {
        kbc.commandPort().out(0, 1, c);
    }

    private void writeData(int d) {
        kbc.dataPort().out(0, 1, d);
    }

    /** Linux's __i8042_command: command, parameters, then results, polling the status register. */
    private int[] i8042Command(int cmd, int results, int... params) {
        assertThat(status() & STATUS_IBF).isZero();
        command(cmd);
        for (int p : params) {
            assertThat(status() & STATUS_IBF).isZero();
            writeData(p);
        }
        int[] out = new int[results];
        for (int i = 0; i < results; i++) {
            if ((status() & STATUS_OBF) == 0) {
                // The device answers synchronously: no byte now means Linux would wait 500 ms in vain.
                throw new AssertionError("i8042_wait_read would time out after command 0x" + Integer.toHexString(cmd));
            }
            if (cmd == CMD_WRITE_AUX_BUFFER && (status() & STATUS_AUXDATA) == 0) {
                return null; // "auxerr"
            }
            out[i] = data();
        }
        return out;
    }

    /** Linux's i8042_flush: at most 16 bytes, or "No controller found". */
    private int flush() {
        int count = 0;
        while ((status() & STATUS_OBF) != 0) {
            assertThat(count++).as("bytes in the buffer").isLessThan(16);
            data();
        }
        return count;
    }

    /** Linux's i8042_probe path up to the keyboard port being enabled. */
    private void linuxProbe() {
        flush(); // i8042_controller_check
        assertThat(i8042Command(CMD_SELF_TEST, 1)).containsExactly(SELF_TEST_OK);
        int ctr = i8042Command(CMD_READ_CTR, 1)[0];
        assertThat(i8042Command(CMD_READ_CTR, 1)[0]).isEqualTo(ctr);
        assertThat(status() & STATUS_KEYLOCK).as("keylock not active").isNotZero();
        ctr = (ctr | CTR_KBDDIS) & ~CTR_KBDINT;
        i8042Command(CMD_WRITE_CTR, 0, ctr);
        flush();

        // i8042_check_aux: the loopback fails at once (data from the keyboard side), then the
        // interface test rejects the port: no AUX port, no timeout.
        flush();
        assertThat(i8042Command(CMD_WRITE_AUX_BUFFER, 1, 0x5A)).isNull();
        int param = i8042Command(CMD_AUX_TEST, 1)[0];
        assertThat(param == 0 || param == 0xFA || param == 0xFF).as("AUX port rejected").isFalse();

        // i8042_setup_kbd: enable the keyboard port and its interrupt.
        ctr = (ctr & ~CTR_KBDDIS) | CTR_KBDINT;
        i8042Command(CMD_WRITE_CTR, 0, ctr);
        // Linux's interrupt handler eats whatever the AUX probe left behind, one byte per edge.
        while (irq.asserted()) {
            assertThat(status() & STATUS_OBF).isNotZero();
            data();
        }
        assertThat(status() & STATUS_OBF).isZero();
        assertThat(kbc.unknownCommands()).isZero();
    }

    /** ps2_command as atkbd uses it: the keyboard's answers arrive through IRQ 1, one edge each. */
    private List<Integer> keyboardCommand(int... bytes) {
        List<Integer> replies = new ArrayList<>();
        for (int b : bytes) {
            int edges = irq.risingEdges();
            writeData(b);
            while (irq.asserted()) {
                assertThat(irq.risingEdges()).as("a fresh edge per byte").isEqualTo(edges + 1);
                edges++;
                int s = status();
                assertThat(s & STATUS_OBF).isNotZero();
                assertThat(s & STATUS_AUXDATA).isZero();
                replies.add(data());
            }
        }
        return replies;
    }

    @Test
    void linuxProbesTheControllerWithoutErrorsAndFindsATranslatingKeyboard() {
        linuxProbe();
        assertThat(kbc.configuration() & CTR_XLATE).as("BIOS left translation on").isNotZero();
        // atkbd_probe: GETID, then deactivate; atkbd_activate: LEDs, typematic rate, enable.
        assertThat(keyboardCommand(KBD_GET_ID)).containsExactly(KBD_ACK, 0xAB, 0x41);
        assertThat(keyboardCommand(KBD_DISABLE)).containsExactly(KBD_ACK);
        assertThat(keyboardCommand(KBD_SET_LEDS, 0x00)).containsExactly(KBD_ACK, KBD_ACK);
        assertThat(keyboardCommand(KBD_SET_TYPEMATIC, 0x20)).containsExactly(KBD_ACK, KBD_ACK);
        assertThat(keyboardCommand(KBD_ENABLE)).containsExactly(KBD_ACK);
        assertThat(keyboardCommand(KBD_ECHO)).containsExactly(KBD_ECHO);
        assertThat(keyboardCommand(KBD_RESET)).containsExactly(KBD_ACK, KBD_BAT_OK);
        assertThat(exits).isEmpty();
    }

    @Test
    void untranslatedKeyboardReportsItsRawIdAndScanSet() {
        linuxProbe();
        int ctr = i8042Command(CMD_READ_CTR, 1)[0];
        i8042Command(CMD_WRITE_CTR, 0, ctr & ~CTR_XLATE);
        assertThat(keyboardCommand(KBD_GET_ID)).containsExactly(KBD_ACK, 0xAB, 0x83);
        assertThat(keyboardCommand(KBD_SCAN_SET, 0)).containsExactly(KBD_ACK, KBD_ACK, 2);
        assertThat(keyboardCommand(KBD_SCAN_SET, 3)).containsExactly(KBD_ACK, KBD_ACK);
        assertThat(keyboardCommand(KBD_SCAN_SET, 0)).containsExactly(KBD_ACK, KBD_ACK, 3);
    }

    @Test
    void portEnableCommandsFlipTheConfigurationBits() {
        command(CMD_AUX_ENABLE);
        assertThat(i8042Command(CMD_READ_CTR, 1)[0] & CTR_AUXDIS).isZero();
        command(CMD_AUX_DISABLE);
        assertThat(i8042Command(CMD_READ_CTR, 1)[0] & CTR_AUXDIS).isNotZero();
        command(CMD_KBD_DISABLE);
        assertThat(i8042Command(CMD_READ_CTR, 1)[0] & CTR_KBDDIS).isNotZero();
        command(CMD_KBD_ENABLE);
        assertThat(i8042Command(CMD_READ_CTR, 1)[0] & CTR_KBDDIS).isZero();
        assertThat(i8042Command(CMD_KBD_TEST, 1)).containsExactly(0);
        i8042Command(CMD_WRITE_MODE, 0, 0x01);
        assertThat(i8042Command(CMD_READ_MODE, 1)).containsExactly(0x01);
        command(CMD_A20_DISABLE);
        assertThat(i8042Command(CMD_READ_OUTPUT_PORT, 1)[0] & OUTPUT_PORT_A20).isZero();
        command(CMD_A20_ENABLE);
        assertThat(i8042Command(CMD_READ_OUTPUT_PORT, 1)[0]).isEqualTo(OUTPUT_PORT_RESET | OUTPUT_PORT_A20);
    }

    @Test
    void statusReportsSystemFlagAndWhetherTheLastWriteWasACommand() {
        assertThat(status()).isEqualTo(STATUS_KEYLOCK | STATUS_SYS);
        command(CMD_READ_CTR);
        assertThat(status()).isEqualTo(STATUS_KEYLOCK | STATUS_SYS | STATUS_CMD | STATUS_OBF);
        data();
        command(CMD_WRITE_CTR);
        writeData(0);
        assertThat(status()).as("SYS follows the configuration byte").isEqualTo(STATUS_KEYLOCK);
        assertThat(i8042Command(CMD_SELF_TEST, 1)).containsExactly(SELF_TEST_OK);
        assertThat(status() & STATUS_SYS).isNotZero();
    }

    @Test
    void pulsingTheResetLineRequestsAResetExit() {
        command(CMD_PULSE_RESET);
        assertThat(exits).singleElement().satisfies(e -> {
            assertThat(e.reason()).isEqualTo(VmExit.Reason.RESET);
            assertThat(e.detail()).contains("0xfe");
        });
        command(0xFF); // pulses nothing: no reset
        command(0xF1);
        assertThat(exits).hasSize(1);
    }

    @Test
    void writingTheOutputPortWithResetLowRequestsAReset() {
        command(CMD_WRITE_OUTPUT_PORT);
        writeData(OUTPUT_PORT_RESET | OUTPUT_PORT_A20);
        assertThat(exits).isEmpty();
        command(CMD_WRITE_OUTPUT_PORT);
        writeData(OUTPUT_PORT_A20);
        assertThat(exits).singleElement().extracting(VmExit::reason).isEqualTo(VmExit.Reason.RESET);
    }

    @Test
    void unknownCommandsAreIgnoredAndCounted() {
        command(0x05);
        command(0xC0);
        assertThat(kbc.unknownCommands()).isEqualTo(2);
        assertThat(status() & STATUS_OBF).isZero();
        assertThat(kbc.dataPort().in(1, 1)).isEqualTo(0xFF);
        kbc.commandPort().out(3, 4, 0xFE); // not the register: ignored
        assertThat(exits).isEmpty();
    }

    @Test
    void controllerResponsesRaiseTheKeyboardInterruptOnlyWhenEnabled() {
        int ctr = i8042Command(CMD_READ_CTR, 1)[0];
        i8042Command(CMD_WRITE_CTR, 0, ctr & ~CTR_KBDINT);
        command(CMD_READ_CTR);
        assertThat(irq.asserted()).isFalse();
        data();
        i8042Command(CMD_WRITE_CTR, 0, ctr | CTR_KBDINT);
        command(CMD_READ_CTR);
        assertThat(irq.asserted()).isTrue();
        assertThat(data() & CTR_KBDINT).isNotZero();
        assertThat(irq.asserted()).isFalse();
        assertThat(data()).as("an empty buffer repeats the last byte").isEqualTo(ctr | CTR_KBDINT);
    }

    @Test
    void outputQueueHoldsSixteenBytesAndDropsTheRest() {
        for (int i = 0; i < 20; i++) {
            command(CMD_WRITE_KBD_BUFFER);
            writeData(i);
        }
        assertThat(flush()).isEqualTo(16);
        assertThat(kbc.droppedOutputBytes()).isEqualTo(4);
    }

    @Test
    void ctrlAltDelArrivesAsTranslatedSetOneScanCodes() {
        linuxProbe();
        keyboardCommand(KBD_ENABLE);
        irq.clearHistory();
        assertThat(kbc.sendCtrlAltDel()).isTrue();
        List<Integer> codes = new ArrayList<>();
        while (irq.asserted()) {
            codes.add(data());
        }
        assertThat(codes).containsExactly(0x1D, 0x38, 0xE0, 0x53, 0xE0, 0xD3, 0xB8, 0x9D);
        assertThat(irq.risingEdges()).isEqualTo(8);
    }

    @Test
    void ctrlAltDelUsesSetTwoWithoutTranslation() {
        linuxProbe();
        int ctr = i8042Command(CMD_READ_CTR, 1)[0];
        i8042Command(CMD_WRITE_CTR, 0, ctr & ~CTR_XLATE);
        assertThat(kbc.sendCtrlAltDel()).isTrue();
        List<Integer> codes = new ArrayList<>();
        while (irq.asserted()) {
            codes.add(data());
        }
        assertThat(codes).containsExactly(0x14, 0x11, 0xE0, 0x71, 0xE0, 0xF0, 0x71, 0xF0, 0x11, 0xF0, 0x14);
    }

    @Test
    void ctrlAltDelIsRefusedWhileTheKeyboardIsDisabled() {
        command(CMD_KBD_DISABLE);
        assertThat(kbc.sendCtrlAltDel()).isFalse();
        command(CMD_KBD_ENABLE);
        writeData(KBD_DISABLE);
        flush();
        assertThat(kbc.sendCtrlAltDel()).as("keyboard scanning off").isFalse();
        writeData(KBD_ENABLE);
        flush();
        assertThat(kbc.sendCtrlAltDel()).isTrue();
        assertThat(kbc.sendCtrlAltDel()).isTrue();
        assertThat(kbc.sendCtrlAltDel()).as("no room for a third one").isFalse();
    }
}
