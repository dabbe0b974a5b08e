package dev.panamax.devices;

import dev.panamax.vm.InterruptLine;
import dev.panamax.vm.PortIoDevice;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.util.Objects;

/**
 * A 16550A UART as Linux's 8250 driver sees it (COM1 is 8 ports at 0x3F8 on IRQ 4).
 *
 * <p>Transmission is instantaneous: THR is always empty, so THRE and TEMT are always set, and a
 * byte written to THR goes straight to the {@link Events} hook (or, in loopback mode, back into the
 * receiver), as vm-superio's {@code Serial} hands bytes to its writer and events. What becomes of
 * them (buffering, lines, counting) is the hook's business, for a console {@link ConsoleOutput}'s.
 * Received bytes come from the host through {@link #receive(byte[], int, int)}; they
 * wait in one bounded queue that stands for the 16-byte receive FIFO plus a host-side backlog.
 * Interrupts follow the 16550 priority order (line status, received data, THR empty, modem
 * status) and drive the {@link InterruptLine}: asserted while an enabled interrupt is pending,
 * deasserted when none is, and touched only when that changes.
 *
 * <p>Threads: {@link #in}/{@link #out} run on vCPU threads and {@link #receive} on a host input
 * thread; register state is guarded by one lock. The hook is called on the vCPU thread that
 * transmitted, outside that lock.
 */
public final class Uart16550 implements PortIoDevice, Stateful {

    /** What the UART tells its owner about transmission (vm-superio's {@code SerialEvents} and writer in one). */
    public interface Events {
        /** The guest transmitted {@code b}. */
        void transmitted(byte b);

        /** The guest's driver stopped transmitting for now: it rewrote IER at the end of a burst. */
        void transmitPaused();
    }

    /** Standard COM1 base port and ISA IRQ. */
    public static final int COM1_PORT = 0x3F8;
    public static final int COM1_IRQ = 4;
    /** Ports the UART occupies. */
    public static final int PORT_COUNT = 8;
    /** The receive FIFO of a 16550A. */
    public static final int FIFO_SIZE = 16;
    /** Default host-side receive backlog behind the FIFO. */
    public static final int DEFAULT_HOST_BUFFER = 64 * 1024;

    // Register offsets.
    static final int RBR_THR_DLL = 0;
    static final int IER_DLM = 1;
    static final int IIR_FCR = 2;
    static final int LCR = 3;
    static final int MCR = 4;
    static final int LSR = 5;
    static final int MSR = 6;
    static final int SCR = 7;

    // IER bits.
    static final int IER_RDI = 0x01; // received data available
    static final int IER_THRI = 0x02; // THR empty
    static final int IER_RLSI = 0x04; // receiver line status
    static final int IER_MSI = 0x08; // modem status

    // IIR values.
    static final int IIR_NO_INT = 0x01;
    static final int IIR_MSI = 0x00;
    static final int IIR_THRI = 0x02;
    static final int IIR_RDI = 0x04;
    static final int IIR_RLSI = 0x06;
    static final int IIR_FIFO_ENABLED = 0xC0;

    // FCR bits.
    static final int FCR_ENABLE = 0x01;
    static final int FCR_CLEAR_RCVR = 0x02;

    static final int LCR_DLAB = 0x80;

    // MCR bits.
    static final int MCR_DTR = 0x01;
    static final int MCR_RTS = 0x02;
    static final int MCR_OUT1 = 0x04;
    static final int MCR_OUT2 = 0x08;
    static final int MCR_LOOP = 0x10;

    // LSR bits.
    static final int LSR_DR = 0x01;
    static final int LSR_OE = 0x02;
    static final int LSR_THRE = 0x20;
    static final int LSR_TEMT = 0x40;

    // MSR bits.
    static final int MSR_DCTS = 0x01;
    static final int MSR_DDSR = 0x02;
    static final int MSR_TERI = 0x04;
    static final int MSR_DDCD = 0x08;
    static final int MSR_CTS = 0x10;
    static final int MSR_DSR = 0x20;
    static final int MSR_RI = 0x40;
    static final int MSR_DCD = 0x80;

    /** Modem inputs when not in loopback: a null-modem host that is always ready. */
    private static final int MSR_HOST_READY = MSR_DCD | MSR_DSR | MSR_CTS;

    private final InterruptLine irq;

    // Register state, guarded by `this`.
    private int ier;
    private int lcr = 0x03; // 8N1, as firmware leaves it
    private int mcr = MCR_OUT2;
    private int scr;
    private int dll = 12; // 9600 baud
    private int dlm;
    private boolean fifoEnabled;
    private boolean overrun;
    private boolean thrInterruptPending;
    private int msrDelta;
    private boolean irqAsserted;
    private final byte[] rx;
    private int rxHead;
    private int rxCount;
    private long droppedInput;

    private final Events events;

    /**
     * @param irq the UART's interrupt line (ISA IRQ 4 for COM1)
     * @param events where transmitted bytes go
     */
    public Uart16550(InterruptLine irq, Events events) {
        this(irq, events, DEFAULT_HOST_BUFFER);
    }

    /**
     * @param hostBuffer bytes of host input held behind the 16-byte FIFO before input is dropped
     */
    public Uart16550(InterruptLine irq, Events events, int hostBuffer) {
        if (hostBuffer < 0) {
            throw new IllegalArgumentException("host receive buffer must not be negative: " + hostBuffer);
        }
        this.irq = Objects.requireNonNull(irq, "irq");
        this.events = Objects.requireNonNull(events, "events");
        this.rx = new byte[FIFO_SIZE + hostBuffer];
    }

    // ---- guest side ----

    @Override
    public int in(int offset, int size) {
        synchronized (this) {
            return switch (offset) {
                case RBR_THR_DLL -> (lcr & LCR_DLAB) != 0 ? dll : readReceiver();
                case IER_DLM -> (lcr & LCR_DLAB) != 0 ? dlm : ier;
                case IIR_FCR -> readInterruptId();
                case LCR -> lcr;
                case MCR -> mcr;
                case LSR -> readLineStatus();
                case MSR -> readModemStatus();
                case SCR -> scr;
                default -> 0xFF;
            };
        }
    }

    @Override
    public void out(int offset, int size, int value) {
        int b = value & 0xFF;
        boolean transmit = false;
        boolean paused = false;
        synchronized (this) {
            switch (offset) {
                case RBR_THR_DLL -> {
                    if ((lcr & LCR_DLAB) != 0) {
                        dll = b;
                    } else if ((mcr & MCR_LOOP) != 0) {
                        enqueueReceived(b);
                        transmitted();
                    } else {
                        transmit = true;
                        transmitted();
                    }
                }
                case IER_DLM -> {
                    if ((lcr & LCR_DLAB) != 0) {
                        dlm = b;
                    } else {
                        writeInterruptEnable(b);
                        // The 8250 driver rewrites IER when it stops transmitting (console write
                        // done, TX queue empty): the guest has stopped writing for now.
                        paused = true;
                    }
                }
                case IIR_FCR -> writeFifoControl(b);
                case LCR -> lcr = b;
                case MCR -> writeModemControl(b);
                case SCR -> scr = b;
                default -> { } // LSR and MSR are read-only; writes are ignored
            }
            updateInterrupt();
        }
        if (transmit) {
            events.transmitted((byte) b);
        } else if (paused) {
            events.transmitPaused();
        }
    }

    private int readReceiver() {
        if (rxCount == 0) {
            return 0;
        }
        int b = rx[rxHead] & 0xFF;
        rxHead = (rxHead + 1) % rx.length;
        rxCount--;
        updateInterrupt();
        return b;
    }

    private int pendingInterrupt() {
        return pendingInterrupt(ier, overrun, rxCount, thrInterruptPending, msrDelta);
    }

    /** The highest-priority enabled interrupt these registers make pending, as its IIR value. */
    private static int pendingInterrupt(int ier, boolean overrun, int rxCount, boolean thrInterruptPending, int msrDelta) {
        if ((ier & IER_RLSI) != 0 && overrun) {
            return IIR_RLSI;
        }
        if ((ier & IER_RDI) != 0 && rxCount > 0) {
            return IIR_RDI;
        }
        if ((ier & IER_THRI) != 0 && thrInterruptPending) {
            return IIR_THRI;
        }
        if ((ier & IER_MSI) != 0 && msrDelta != 0) {
            return IIR_MSI;
        }
        return IIR_NO_INT;
    }

    private int readInterruptId() {
        int id = pendingInterrupt();
        if (id == IIR_THRI) {
            // Reading IIR acknowledges a THR-empty interrupt when it is the one reported.
            thrInterruptPending = false;
            updateInterrupt();
        }
        return id | (fifoEnabled ? IIR_FIFO_ENABLED : 0);
    }

    private int readLineStatus() {
        int lsr = LSR_THRE | LSR_TEMT;
        if (rxCount > 0) {
            lsr |= LSR_DR;
        }
        if (overrun) {
            lsr |= LSR_OE;
            overrun = false; // error bits clear on read
            updateInterrupt();
        }
        return lsr;
    }

    private int modemInputs() {
        if ((mcr & MCR_LOOP) == 0) {
            return MSR_HOST_READY;
        }
        // Loopback wires the MCR outputs to the MSR inputs; Linux's probe checks this.
        int msr = 0;
        if ((mcr & MCR_RTS) != 0) {
            msr |= MSR_CTS;
        }
        if ((mcr & MCR_DTR) != 0) {
            msr |= MSR_DSR;
        }
        if ((mcr & MCR_OUT1) != 0) {
            msr |= MSR_RI;
        }
        if ((mcr & MCR_OUT2) != 0) {
            msr |= MSR_DCD;
        }
        return msr;
    }

    private int readModemStatus() {
        int msr = modemInputs() | msrDelta;
        msrDelta = 0;
        updateInterrupt();
        return msr;
    }

    private void writeInterruptEnable(int value) {
        int old = ier;
        ier = value & 0x0F; // bits 4-7 are reserved on a 16550A and read back as 0
        if ((old & IER_THRI) == 0 && (ier & IER_THRI) != 0) {
            // THR is always empty here, so enabling the interrupt makes it pending at once.
            thrInterruptPending = true;
        }
    }

    private void writeFifoControl(int value) {
        boolean enable = (value & FCR_ENABLE) != 0;
        if (enable != fifoEnabled) {
            clearReceiveFifo(); // switching FIFO mode resets the FIFOs
            fifoEnabled = enable;
        } else if (enable && (value & FCR_CLEAR_RCVR) != 0) {
            clearReceiveFifo();
        }
        // Trigger level bits are accepted and unused: received data interrupts at once.
    }

    private void clearReceiveFifo() {
        int drop = Math.min(rxCount, FIFO_SIZE);
        rxHead = (rxHead + drop) % rx.length;
        rxCount -= drop;
    }

    private void writeModemControl(int value) {
        int before = modemInputs();
        mcr = value & 0x1F;
        int after = modemInputs();
        int changed = before ^ after;
        if ((changed & MSR_CTS) != 0) {
            msrDelta |= MSR_DCTS;
        }
        if ((changed & MSR_DSR) != 0) {
            msrDelta |= MSR_DDSR;
        }
        if ((before & MSR_RI) != 0 && (after & MSR_RI) == 0) {
            msrDelta |= MSR_TERI;
        }
        if ((changed & MSR_DCD) != 0) {
            msrDelta |= MSR_DDCD;
        }
    }

    /** The transmitter took the byte and is empty again at once. */
    private void transmitted() {
        thrInterruptPending = true;
    }

    private boolean enqueueReceived(int b) {
        if (rxCount == rx.length) {
            overrun = true;
            droppedInput++;
            return false;
        }
        rx[(rxHead + rxCount) % rx.length] = (byte) b;
        rxCount++;
        return true;
    }

    private void updateInterrupt() {
        boolean pending = pendingInterrupt() != IIR_NO_INT;
        if (pending != irqAsserted) {
            irqAsserted = pending;
            irq.set(pending);
        }
    }

    // ---- state ----

    /**
     * Writes IER, LCR, MCR, SCR, the divisor latch (DLL, DLM), whether the FIFOs are on, the
     * overrun error, the THR-empty interrupt, the modem status deltas, the interrupt line's level,
     * and the bytes waiting to be received. IIR, LSR and MSR follow from these.
     */
    @Override
    public synchronized void saveState(StateWriter out) {
        out.u8(ier).u8(lcr).u8(mcr).u8(scr).u8(dll).u8(dlm);
        out.bool(fifoEnabled).bool(overrun).bool(thrInterruptPending).u8(msrDelta).bool(irqAsserted);
        byte[] waiting = new byte[rxCount];
        for (int i = 0; i < rxCount; i++) {
            waiting[i] = rx[(rxHead + i) % rx.length];
        }
        out.bytes(waiting);
    }

    /**
     * Takes the registers and received bytes after checking them: reserved bits clear, the line level
     * what the pending interrupts make it, and no more bytes than this UART's receive buffer holds.
     * When the line was high it is raised again, so the interrupt controller sees it as it was.
     */
    @Override
    public void restoreState(StateReader in) {
        int savedIer = in.u8("IER");
        int savedLcr = in.u8("LCR");
        int savedMcr = in.u8("MCR");
        int savedScr = in.u8("SCR");
        int savedDll = in.u8("DLL");
        int savedDlm = in.u8("DLM");
        boolean savedFifo = in.bool("the FIFO enable");
        boolean savedOverrun = in.bool("the overrun error");
        boolean savedThrPending = in.bool("the THR-empty interrupt");
        int savedMsrDelta = in.u8("the modem status deltas");
        boolean savedLine = in.bool("the interrupt line level");
        byte[] waiting = in.bytes(rx.length, "the received bytes");
        if ((savedIer & ~0x0F) != 0) {
            throw in.fail(String.format("IER is 0x%02x; bits 4-7 are reserved on a 16550A and always 0", savedIer));
        }
        if ((savedMcr & ~0x1F) != 0) {
            throw in.fail(String.format("MCR is 0x%02x; bits 5-7 are reserved and always 0", savedMcr));
        }
        int deltas = MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD;
        if ((savedMsrDelta & ~deltas) != 0) {
            throw in.fail(String.format("the modem status deltas are 0x%02x; only bits 0-3 are deltas", savedMsrDelta));
        }
        boolean pending = pendingInterrupt(savedIer, savedOverrun, waiting.length, savedThrPending, savedMsrDelta) != IIR_NO_INT;
        if (savedLine != pending) {
            throw in.fail("the interrupt line is saved " + (savedLine ? "high" : "low") + ", and the saved registers have "
                    + (pending ? "an enabled interrupt pending" : "no enabled interrupt pending"));
        }
        synchronized (this) {
            ier = savedIer;
            lcr = savedLcr;
            mcr = savedMcr;
            scr = savedScr;
            dll = savedDll;
            dlm = savedDlm;
            fifoEnabled = savedFifo;
            overrun = savedOverrun;
            thrInterruptPending = savedThrPending;
            msrDelta = savedMsrDelta;
            System.arraycopy(waiting, 0, rx, 0, waiting.length);
            rxHead = 0;
            rxCount = waiting.length;
            updateInterrupt(); // raises the line again when it was high
        }
    }

    // ---- host side ----

    /**
     * Queues bytes for the guest to receive and raises the received-data interrupt. Never blocks
     * beyond a short lock; bytes beyond the free space are dropped, counted, and reported to the
     * guest as an overrun.
     *
     * @return how many bytes were accepted
     */
    public int receive(byte[] data, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, data.length);
        synchronized (this) {
            int accepted = Math.min(length, rx.length - rxCount);
            for (int i = 0; i < accepted; i++) {
                rx[(rxHead + rxCount) % rx.length] = data[offset + i];
                rxCount++;
            }
            if (accepted < length) {
                overrun = true;
                droppedInput += length - accepted;
            }
            updateInterrupt();
            return accepted;
        }
    }

    /** {@link #receive(byte[], int, int)} of a whole array. */
    public int receive(byte[] data) {
        return receive(data, 0, data.length);
    }

    /** Queues one byte (the low 8 bits of {@code b}); returns whether it was accepted. */
    public boolean receive(int b) {
        synchronized (this) {
            boolean accepted = enqueueReceived(b);
            updateInterrupt();
            return accepted;
        }
    }

    /** Host input bytes dropped because the receive buffer was full. */
    public synchronized long droppedInputBytes() {
        return droppedInput;
    }

    /** Bytes waiting for the guest to read them. */
    public synchronized int pendingInputBytes() {
        return rxCount;
    }
}
