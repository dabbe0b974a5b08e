package dev.panamax.devices;

import static dev.panamax.devices.Uart16550.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Saving and restoring a UART: registers, received bytes and the interrupt line. */
class Uart16550StateTest {
    private static final int HOST_BUFFER = 8;

    /** A UART with its line and what it transmitted. */
    private static final class Serial {
        final RecordingInterruptLine irq = new RecordingInterruptLine();
        final List<Byte> transmitted = new ArrayList<>();
        final Uart16550 uart;

        Serial(int hostBuffer) {
            uart = new Uart16550(irq, new Uart16550.Events() {
                @Override
                public void transmitted(byte b) {
                    transmitted.add(b);
                }

                @Override
                public void transmitPaused() {}
            }, hostBuffer);
        }

        int in(int offset) {
            return uart.in(offset, 1) & 0xFF;
        }

        void out(int offset, int value) {
            uart.out(offset, 1, value);
        }

        byte[] save() {
            StateWriter out = new StateWriter();
            uart.saveState(out);
            return out.toByteArray();
        }

        void restore(byte[] state) {
            StateReader in = new StateReader(state, "the snapshot");
            uart.restoreState(in);
            in.end();
        }

        /**
         * What the guest reads from every register, then from IIR, LSR and RBR until the receive queue
         * is empty, with the line level after each read: reads have side effects, so both UARTs must
         * go through the same sequence.
         */
        List<String> guestReads() {
            List<String> reads = new ArrayList<>();
            int lcr = in(LCR);
            out(LCR, lcr | LCR_DLAB);
            reads.add("DLL " + in(RBR_THR_DLL) + " DLM " + in(IER_DLM));
            out(LCR, lcr);
            for (int offset : new int[] {IER_DLM, LCR, MCR, SCR, IIR_FCR, MSR, LSR, IIR_FCR, MSR}) {
                reads.add(offset + "=" + Integer.toHexString(in(offset)) + " line " + irq.asserted());
            }
            for (int i = 0; i < 2 * (FIFO_SIZE + HOST_BUFFER); i++) {
                reads.add("IIR " + Integer.toHexString(in(IIR_FCR)) + " LSR " + Integer.toHexString(in(LSR)) + " RBR "
                        + in(RBR_THR_DLL) + " line " + irq.asserted());
            }
            return reads;
        }
    }

    /** A UART driven through its ports into a state far from its reset state, with its line high. */
    private static Serial busySerial() {
        Serial s = new Serial(HOST_BUFFER);
        s.out(LCR, LCR_DLAB | 0x1b);
        s.out(RBR_THR_DLL, 3);
        s.out(IER_DLM, 1);
        s.out(LCR, 0x1b); // 8E1... whatever the guest likes
        s.out(SCR, 0x5a);
        s.out(IIR_FCR, FCR_ENABLE);
        s.out(MCR, MCR_LOOP | MCR_RTS | MCR_OUT2);
        s.out(MCR, MCR_LOOP | MCR_DTR | MCR_OUT1); // CTS and DCD fall, DSR and RI rise: deltas
        s.out(MCR, MCR_OUT2 | MCR_DTR | MCR_RTS);
        s.out(IER_DLM, IER_RDI | IER_RLSI | IER_MSI);
        byte[] input = new byte[FIFO_SIZE + HOST_BUFFER + 3];
        for (int i = 0; i < input.length; i++) {
            input[i] = (byte) (0x30 + i);
        }
        s.uart.receive(input); // three too many: an overrun
        s.in(RBR_THR_DLL); // the guest has read one
        return s;
    }

    @Test
    void aRestoredUartReadsAsSavedAndRaisesItsLineAgain() {
        Serial saved = busySerial();
        assertThat(saved.irq.asserted()).isTrue();
        Serial fresh = new Serial(HOST_BUFFER);
        assertThat(fresh.irq.asserted()).isFalse();

        fresh.restore(saved.save());

        assertThat(fresh.irq.asserted()).as("the line is high again").isTrue();
        assertThat(fresh.irq.changes()).containsExactly(true);
        assertThat(fresh.uart.pendingInputBytes()).isEqualTo(saved.uart.pendingInputBytes()).isEqualTo(FIFO_SIZE + HOST_BUFFER - 1);
        assertThat(fresh.guestReads()).isEqualTo(saved.guestReads());
    }

    @Test
    void aPendingThrEmptyInterruptAndTheDivisorLatchSurvive() {
        Serial saved = new Serial(HOST_BUFFER);
        saved.out(IER_DLM, IER_THRI); // THR empty at once: pending
        saved.out(LCR, LCR_DLAB); // the guest is mid-way through setting the baud rate
        saved.out(RBR_THR_DLL, 1);
        Serial fresh = new Serial(HOST_BUFFER);

        fresh.restore(saved.save());

        assertThat(fresh.irq.asserted()).isTrue();
        assertThat(fresh.in(RBR_THR_DLL)).isEqualTo(1);
        fresh.out(LCR, 0);
        saved.out(LCR, 0);
        assertThat(fresh.in(IIR_FCR)).isEqualTo(saved.in(IIR_FCR)).isEqualTo(IIR_THRI);
        assertThat(fresh.irq.asserted()).isEqualTo(saved.irq.asserted()).isFalse();
        // Transmission goes on as before.
        fresh.out(RBR_THR_DLL, 'x');
        assertThat(fresh.transmitted).containsExactly((byte) 'x');
        assertThat(fresh.irq.asserted()).isTrue();
    }

    @Test
    void aQuietUartLeavesTheLineAlone() {
        Serial fresh = new Serial(HOST_BUFFER);
        fresh.restore(new Serial(HOST_BUFFER).save());
        assertThat(fresh.irq.changes()).isEmpty();
    }

    /** {@code state} with byte {@code offset} replaced. */
    private static byte[] with(byte[] state, int offset, int value) {
        byte[] changed = state.clone();
        changed[offset] = (byte) value;
        return changed;
    }

    private static void refused(byte[] state, String message) {
        Serial target = busySerial();
        List<String> before = busySerial().guestReads();
        assertThatThrownBy(() -> target.restore(state)).isInstanceOf(StateFormatException.class).hasMessage(message);
        assertThat(target.guestReads()).as("nothing taken").isEqualTo(before);
    }

    @Test
    void reservedRegisterBitsAreRefused() {
        byte[] state = new Serial(HOST_BUFFER).save();
        refused(with(state, 0, 0x10), "the snapshot: IER is 0x10; bits 4-7 are reserved on a 16550A and always 0");
        refused(with(state, 2, 0x28), "the snapshot: MCR is 0x28; bits 5-7 are reserved and always 0");
        refused(with(state, 9, 0x11), "the snapshot: the modem status deltas are 0x11; only bits 0-3 are deltas");
    }

    @Test
    void flagsMustBeBooleans() {
        byte[] state = new Serial(HOST_BUFFER).save();
        refused(with(state, 6, 2), "the snapshot: the FIFO enable is 2, not 0 or 1");
        refused(with(state, 7, 3), "the snapshot: the overrun error is 3, not 0 or 1");
        refused(with(state, 8, 4), "the snapshot: the THR-empty interrupt is 4, not 0 or 1");
        refused(with(state, 10, 5), "the snapshot: the interrupt line level is 5, not 0 or 1");
    }

    @Test
    void aLineLevelTheRegistersDoNotMakeIsRefused() {
        byte[] quiet = new Serial(HOST_BUFFER).save();
        refused(with(quiet, 10, 1), "the snapshot: the interrupt line is saved high, and the saved registers have no enabled"
                + " interrupt pending");
        byte[] busy = busySerial().save();
        refused(with(busy, 10, 0), "the snapshot: the interrupt line is saved low, and the saved registers have an enabled"
                + " interrupt pending");
    }

    @Test
    void moreReceivedBytesThanThisUartHoldsAreRefused() {
        byte[] state = busySerial().save(); // 23 bytes waiting
        Serial small = new Serial(4);
        assertThatThrownBy(() -> small.restore(state))
                .hasMessage("the snapshot: the received bytes count is 23, more than the 20 allowed");
        assertThat(small.uart.pendingInputBytes()).isZero();
        byte[] cut = java.util.Arrays.copyOf(state, state.length - 1);
        refused(cut, "the snapshot: the received bytes is cut off (23 bytes needed, 22 left)");
        refused(java.util.Arrays.copyOf(state, 3), "the snapshot: SCR is cut off (1 bytes needed, 0 left)");
    }
}
