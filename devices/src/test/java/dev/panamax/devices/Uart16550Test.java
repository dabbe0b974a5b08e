package dev.panamax.devices;

import static dev.panamax.devices.Uart16550.*;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

class Uart16550Test {

    private final RecordingInterruptLine irq = new RecordingInterruptLine();
    private final ByteArrayOutputStream sink = new ByteArrayOutputStream();
    private final ConsoleOutput console = new ConsoleOutput(sink);
    private final Uart16550 uart = new Uart16550(irq, console);

    private int in(int offset) {
        return uart.in(offset, 1) & 0xFF;
    }

    private void out(int offset, int value) {
        uart.out(offset, 1, value);
    }

    private String sinkText() {
        return sink.toString(StandardCharsets.ISO_8859_1);
    }

    /** The register dance of Linux's 8250 autoconfig() and serial8250_startup(), in order. */
    @Test
    void linuxAutoconfigSeesA16550AWithWorkingThreInterrupt() {
        // IER scratch test: writes 0 then 0x0F and expects them back in the low nibble.
        int savedIer = in(IER_DLM);
        out(IER_DLM, 0);
        assertThat(in(IER_DLM) & 0x0F).isZero();
        out(IER_DLM, 0x0F);
        assertThat(in(IER_DLM) & 0x0F).isEqualTo(0x0F);
        out(IER_DLM, savedIer);

        // Loopback test: RTS|OUT2 in loopback must read back as CTS|DCD.
        int savedMcr = in(MCR);
        out(MCR, MCR_LOOP | 0x0A);
        assertThat(in(MSR) & 0xF0).isEqualTo(0x90);
        out(MCR, savedMcr);

        // EFR probe (LCR 0xBF), then FIFO enable: IIR bits 7:6 = 3 means a 16550A.
        out(LCR, 0xBF);
        out(IIR_FCR, 0);
        out(LCR, 0);
        out(IIR_FCR, FCR_ENABLE);
        assertThat(in(IIR_FCR) >> 6).isEqualTo(3);

        // autoconfig_16550a: no EFR behind DLAB (IIR reads non-zero there), divisor id reads back.
        out(LCR, LCR_DLAB);
        assertThat(in(IIR_FCR)).isNotZero();
        out(RBR_THR_DLL, 0);
        out(IER_DLM, 0);
        assertThat(in(RBR_THR_DLL)).isZero();
        assertThat(in(IER_DLM)).isZero();
        // 16750 check: the 64-byte FIFO bit (IIR bit 5) must stay clear.
        out(LCR, 0);
        out(IIR_FCR, FCR_ENABLE | 0x20);
        int status1 = in(IIR_FCR) >> 5;
        out(LCR, LCR_DLAB);
        out(IIR_FCR, FCR_ENABLE | 0x20);
        int status2 = in(IIR_FCR) >> 5;
        assertThat(status1 == 6 && status2 == 7).isFalse();
        // XScale check: IER bit 6 (UUE) must not stick.
        out(LCR, 0);
        out(IER_DLM, 0x40);
        assertThat(in(IER_DLM) & 0x40).isZero();
        out(IER_DLM, 0);

        // startup: clear FIFOs, LSR must not float at 0xFF.
        out(IIR_FCR, FCR_ENABLE | FCR_CLEAR_RCVR | 0x04);
        in(RBR_THR_DLL);
        assertThat(in(LSR)).isNotEqualTo(0xFF);
        out(LCR, 0x03);

        // UART_BUG_THRE test: re-enabling THRI while THR is empty must raise a THRE interrupt again.
        out(IER_DLM, IER_THRI);
        int iir1 = in(IIR_FCR);
        out(IER_DLM, 0);
        out(IER_DLM, IER_THRI);
        int iir = in(IIR_FCR);
        out(IER_DLM, 0);
        assertThat(iir1 & 0x0F).isEqualTo(IIR_THRI);
        assertThat(iir & IIR_NO_INT).as("THRE pending after re-enable").isZero();

        // UART_BUG_TXEN test: enabling THRI must show an interrupt in IIR.
        out(IER_DLM, IER_THRI);
        int lsr = in(LSR);
        iir = in(IIR_FCR);
        out(IER_DLM, 0);
        assertThat(lsr & LSR_TEMT).isNotZero();
        assertThat(iir & IIR_NO_INT).isZero();
    }

    @Test
    void dlabSwitchesOffsetsZeroAndOneToTheDivisorLatch() {
        out(LCR, LCR_DLAB | 0x03);
        out(RBR_THR_DLL, 0x01);
        out(IER_DLM, 0x02);
        out(LCR, 0x03);
        assertThat(in(IER_DLM)).as("IER untouched by DLM write").isZero();
        out(RBR_THR_DLL, 'x'); // goes to THR, not DLL
        out(LCR, LCR_DLAB | 0x03);
        assertThat(in(RBR_THR_DLL)).isEqualTo(0x01);
        assertThat(in(IER_DLM)).isEqualTo(0x02);
        assertThat(in(LCR)).isEqualTo(LCR_DLAB | 0x03);
        console.flush();
        assertThat(sinkText()).isEqualTo("x");
    }

    @Test
    void scratchRegisterStoresAByte() {
        out(SCR, 0xA5);
        assertThat(in(SCR)).isEqualTo(0xA5);
    }

    @Test
    void transmittedBytesReachTheSinkAtNewlineOrWhenTheGuestStopsWriting() {
        for (char c : "hello".toCharArray()) {
            assertThat(in(LSR) & LSR_THRE).isNotZero();
            out(RBR_THR_DLL, c);
        }
        assertThat(sinkText()).as("buffered until a line ends").isEmpty();
        out(RBR_THR_DLL, '\n');
        assertThat(sinkText()).isEqualTo("hello\n");

        for (char c : "/ # ".toCharArray()) {
            out(RBR_THR_DLL, c);
        }
        out(IER_DLM, 0); // the driver stops TX interrupts: end of this burst
        assertThat(sinkText()).isEqualTo("hello\n/ # ");
    }

    @Test
    void threInterruptIsAcknowledgedByReadingIirAndRearmedByWritingThr() {
        out(IIR_FCR, FCR_ENABLE);
        assertThat(irq.asserted()).isFalse();
        out(IER_DLM, IER_THRI);
        assertThat(irq.asserted()).as("THR empty when THRI gets enabled").isTrue();
        assertThat(in(IIR_FCR)).isEqualTo(0xC0 | IIR_THRI);
        assertThat(irq.asserted()).isFalse();
        assertThat(in(IIR_FCR)).isEqualTo(0xC0 | IIR_NO_INT);

        out(RBR_THR_DLL, 'a'); // transmitted at once: THR empty again
        assertThat(irq.asserted()).isTrue();
        assertThat(in(IIR_FCR) & 0x0F).isEqualTo(IIR_THRI);

        // Writing THR while the interrupt is pending keeps it pending (no spurious edge).
        out(IER_DLM, 0);
        out(IER_DLM, IER_THRI);
        int edges = irq.risingEdges();
        out(RBR_THR_DLL, 'b');
        assertThat(irq.asserted()).isTrue();
        assertThat(irq.risingEdges()).isEqualTo(edges);

        out(IER_DLM, 0); // disabling the source drops the line
        assertThat(irq.asserted()).isFalse();
    }

    @Test
    void receivedBytesRaiseTheInterruptUntilDrained() {
        assertThat(uart.receive("hi".getBytes(StandardCharsets.US_ASCII))).isEqualTo(2);
        assertThat(irq.asserted()).as("RDI not enabled yet").isFalse();
        assertThat(in(LSR) & LSR_DR).isNotZero();

        out(IER_DLM, IER_RDI);
        assertThat(irq.asserted()).isTrue();
        assertThat(in(IIR_FCR)).isEqualTo(IIR_RDI);
        assertThat(in(RBR_THR_DLL)).isEqualTo('h');
        assertThat(irq.asserted()).isTrue();
        assertThat(in(RBR_THR_DLL)).isEqualTo('i');
        assertThat(irq.asserted()).isFalse();
        assertThat(in(LSR) & LSR_DR).isZero();
        assertThat(in(IIR_FCR)).isEqualTo(IIR_NO_INT);

        assertThat(uart.receive('!')).isTrue();
        assertThat(irq.asserted()).isTrue();
        assertThat(irq.risingEdges()).isEqualTo(2);
    }

    @Test
    void interruptsAreReportedInPriorityOrder() {
        Uart16550 small = new Uart16550(irq, console, 0);
        small.out(IER_DLM, 1, IER_RDI | IER_THRI | IER_RLSI | IER_MSI);
        assertThat(small.in(IIR_FCR, 1)).isEqualTo(IIR_THRI);
        small.out(IER_DLM, 1, 0);
        small.out(IER_DLM, 1, IER_RDI | IER_THRI | IER_RLSI | IER_MSI);
        small.receive(new byte[FIFO_SIZE + 1]); // one too many: overrun
        assertThat(small.in(IIR_FCR, 1)).isEqualTo(IIR_RLSI);
        assertThat(small.in(LSR, 1) & (LSR_OE | LSR_DR)).isEqualTo(LSR_OE | LSR_DR);
        assertThat(small.in(LSR, 1) & LSR_OE).as("OE clears on read").isZero();
        assertThat(small.in(IIR_FCR, 1)).isEqualTo(IIR_RDI);
        for (int i = 0; i < FIFO_SIZE; i++) {
            small.in(RBR_THR_DLL, 1);
        }
        assertThat(small.in(IIR_FCR, 1)).isEqualTo(IIR_THRI);
        small.out(MCR, 1, MCR_LOOP); // modem inputs change: DCD, DSR, CTS all drop
        assertThat(small.in(IIR_FCR, 1)).isEqualTo(IIR_MSI);
        assertThat(small.in(MSR, 1)).isEqualTo(MSR_DCTS | MSR_DDSR | MSR_DDCD);
        assertThat(small.in(IIR_FCR, 1)).isEqualTo(IIR_NO_INT);
        assertThat(irq.asserted()).isFalse();
    }

    @Test
    void hostInputBeyondTheBufferIsDroppedAndCounted() {
        Uart16550 small = new Uart16550(irq, console, 100);
        byte[] data = new byte[200];
        assertThat(small.receive(data)).isEqualTo(FIFO_SIZE + 100);
        assertThat(small.receive(7)).isFalse();
        assertThat(small.droppedInputBytes()).isEqualTo(200 - FIFO_SIZE - 100 + 1);
        assertThat(small.pendingInputBytes()).isEqualTo(FIFO_SIZE + 100);
        small.in(RBR_THR_DLL, 1);
        assertThat(small.receive(7)).isTrue();
    }

    @Test
    void fifoResetDropsOnlyTheFifoContents() {
        out(IIR_FCR, FCR_ENABLE);
        byte[] data = new byte[40];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) i;
        }
        uart.receive(data);
        out(IIR_FCR, FCR_ENABLE | FCR_CLEAR_RCVR);
        assertThat(uart.pendingInputBytes()).isEqualTo(40 - FIFO_SIZE);
        assertThat(in(RBR_THR_DLL)).isEqualTo(FIFO_SIZE);
        out(IIR_FCR, 0); // disabling the FIFO resets it too
        assertThat(uart.pendingInputBytes()).isEqualTo(40 - 2 * FIFO_SIZE - 1);
        assertThat(in(IIR_FCR) & 0xC0).isZero();
    }

    @Test
    void loopbackSendsTransmittedBytesToTheReceiverNotTheSink() {
        out(IER_DLM, IER_RDI);
        out(MCR, MCR_LOOP);
        out(RBR_THR_DLL, 0x5A);
        assertThat(irq.asserted()).isTrue();
        assertThat(in(LSR) & LSR_DR).isNotZero();
        assertThat(in(RBR_THR_DLL)).isEqualTo(0x5A);
        console.flush();
        assertThat(sink.size()).isZero();

        out(MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT1 | MCR_OUT2);
        assertThat(in(MSR) & 0xF0).isEqualTo(MSR_CTS | MSR_DSR | MSR_RI | MSR_DCD);
        out(MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT2); // RI falls: trailing edge
        assertThat(in(MSR)).isEqualTo(MSR_CTS | MSR_DSR | MSR_DCD | MSR_TERI);
        out(MCR, MCR_OUT2);
        assertThat(in(MSR) & 0xF0).as("host modem lines outside loopback").isEqualTo(MSR_CTS | MSR_DSR | MSR_DCD);
        out(RBR_THR_DLL, 'z');
        console.flush();
        assertThat(sinkText()).isEqualTo("z");
    }

    @Test
    void oddOffsetsAndSizesNeverThrow() {
        assertThat(uart.in(8, 1)).isEqualTo(0xFF);
        assertThat(uart.in(-1, 4)).isEqualTo(0xFF);
        uart.out(9, 4, 0xFFFF_FFFF);
        uart.out(LSR, 1, 0); // read-only
        uart.out(MSR, 1, 0xFF);
        assertThat(in(LSR)).isEqualTo(LSR_THRE | LSR_TEMT);
        assertThat(in(RBR_THR_DLL)).as("empty receiver").isZero();
        uart.out(SCR, 4, 0x1234_5678);
        assertThat(in(SCR)).isEqualTo(0x78);
    }

    @Test
    void theLineIsOnlyTouchedWhenItsLevelChanges() {
        out(IER_DLM, IER_RDI);
        for (int i = 0; i < 10; i++) {
            uart.receive('a');
        }
        assertThat(irq.changes()).containsExactly(true);
        for (int i = 0; i < 10; i++) {
            in(RBR_THR_DLL);
        }
        assertThat(irq.changes()).containsExactly(true, false);
    }

    @Test
    void hostInputAndGuestReadsOnTwoThreadsKeepEveryByteInOrder() throws Exception {
        Uart16550 u = new Uart16550(irq, console, 256);
        int total = 50_000;
        Thread host = Thread.ofPlatform().start(() -> {
            int sent = 0;
            while (sent < total) {
                if (u.receive(sent & 0xFF)) {
                    sent++;
                } else {
                    Thread.onSpinWait();
                }
            }
        });
        int received = 0;
        while (received < total) {
            if ((u.in(LSR, 1) & LSR_DR) != 0) {
                assertThat(u.in(RBR_THR_DLL, 1)).isEqualTo(received & 0xFF);
                received++;
            }
        }
        host.join();
        assertThat(u.pendingInputBytes()).isZero();
    }
}
