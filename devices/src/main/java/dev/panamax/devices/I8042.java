package dev.panamax.devices;

import dev.panamax.vm.InterruptLine;
import dev.panamax.vm.PortIoDevice;
import dev.panamax.vm.VmExit;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * The PS/2 controller (i8042) with a minimal AT keyboard behind it and no AUX (mouse) port: enough
 * for Linux's i8042 and atkbd drivers to probe without errors or timeouts, for {@code reboot=k}
 * (command 0xFE, or an output-port write with the reset bit clear), and for the host to send
 * Ctrl-Alt-Del.
 *
 * <p>The controller sits at two ports that are not adjacent (0x60 data, 0x64 command/status, with
 * 0x61 belonging to the PIT in between), so it is registered as two {@link PortIoDevice}s: {@link
 * #dataPort()} and {@link #commandPort()}.
 *
 * <p>Bytes for the guest wait in a 16-byte output queue (Linux gives up on a controller whose
 * buffer holds more). Each is one keyboard interrupt: Linux's handler reads one byte per
 * interrupt, so after every data read the line is dropped and raised again while bytes remain,
 * giving the edge-triggered ISA pin a fresh edge.
 *
 * <p>No AUX port: the AUX loopback command (0xD3) echoes from the keyboard side, which Linux reads
 * as "loop failed" at once, and the AUX interface test (0xA9) answers 0x02 (clock line stuck), so
 * Linux registers no AUX port without waiting for a timeout. (The unread loop byte stays queued
 * and is eaten by Linux's interrupt handler when it enables the keyboard port, before any
 * keyboard driver is attached.)
 *
 * <p>Thread-safe: vCPU threads use the ports, a host thread may call {@link #sendCtrlAltDel()}.
 */
public final class I8042 implements Stateful {

    public static final int DATA_PORT = 0x60;
    public static final int COMMAND_PORT = 0x64;
    public static final int KEYBOARD_IRQ = 1;

    // Status register bits.
    static final int STATUS_OBF = 0x01;
    static final int STATUS_IBF = 0x02;
    static final int STATUS_SYS = 0x04;
    static final int STATUS_CMD = 0x08;
    static final int STATUS_KEYLOCK = 0x10; // 1 = not inhibited
    static final int STATUS_AUXDATA = 0x20;

    // Controller configuration byte (CTR) bits.
    static final int CTR_KBDINT = 0x01;
    static final int CTR_AUXINT = 0x02;
    static final int CTR_SYS = 0x04;
    static final int CTR_KBDDIS = 0x10;
    static final int CTR_AUXDIS = 0x20;
    static final int CTR_XLATE = 0x40;

    // Controller commands.
    static final int CMD_READ_CTR = 0x20;
    static final int CMD_WRITE_CTR = 0x60;
    static final int CMD_AUX_DISABLE = 0xA7;
    static final int CMD_AUX_ENABLE = 0xA8;
    static final int CMD_AUX_TEST = 0xA9;
    static final int CMD_SELF_TEST = 0xAA;
    static final int CMD_KBD_TEST = 0xAB;
    static final int CMD_KBD_DISABLE = 0xAD;
    static final int CMD_KBD_ENABLE = 0xAE;
    static final int CMD_READ_MODE = 0xCA;
    static final int CMD_WRITE_MODE = 0xCB;
    static final int CMD_READ_OUTPUT_PORT = 0xD0;
    static final int CMD_WRITE_OUTPUT_PORT = 0xD1;
    static final int CMD_WRITE_KBD_BUFFER = 0xD2;
    static final int CMD_WRITE_AUX_BUFFER = 0xD3;
    static final int CMD_WRITE_AUX_DEVICE = 0xD4;
    static final int CMD_A20_DISABLE = 0xDD;
    static final int CMD_A20_ENABLE = 0xDF;
    static final int CMD_PULSE_RESET = 0xFE;

    static final int SELF_TEST_OK = 0x55;
    static final int AUX_TEST_CLOCK_STUCK = 0x02;

    // Output port bits.
    static final int OUTPUT_PORT_RESET = 0x01; // low = CPU held in reset
    static final int OUTPUT_PORT_A20 = 0x02;

    // Keyboard commands and replies.
    static final int KBD_SET_LEDS = 0xED;
    static final int KBD_ECHO = 0xEE;
    static final int KBD_SCAN_SET = 0xF0;
    static final int KBD_GET_ID = 0xF2;
    static final int KBD_SET_TYPEMATIC = 0xF3;
    static final int KBD_ENABLE = 0xF4;
    static final int KBD_DISABLE = 0xF5;
    static final int KBD_RESET = 0xFF;
    static final int KBD_ACK = 0xFA;
    static final int KBD_BAT_OK = 0xAA;

    static final int OUTPUT_QUEUE = 16;

    /** Ctrl, Alt, Delete pressed then released, in scan code set 1 (what translation produces). */
    private static final byte[] CTRL_ALT_DEL_SET1 = bytes(0x1D, 0x38, 0xE0, 0x53, 0xE0, 0xD3, 0xB8, 0x9D);
    /** The same in scan code set 2, for a guest that turned translation off. */
    private static final byte[] CTRL_ALT_DEL_SET2 = bytes(0x14, 0x11, 0xE0, 0x71, 0xE0, 0xF0, 0x71, 0xF0, 0x11, 0xF0, 0x14);

    private final InterruptLine keyboardIrq;
    private final Consumer<VmExit> exits;
    private final PortIoDevice dataPort = new DataPort();
    private final PortIoDevice commandPort = new CommandPort();

    // Guarded by `this`.
    private int ctr = CTR_KBDINT | CTR_SYS | CTR_AUXDIS | CTR_XLATE; // as a BIOS leaves it
    private int outputPort = OUTPUT_PORT_RESET | OUTPUT_PORT_A20;
    private int mode;
    private int pendingCommand; // controller command waiting for its data byte, or 0
    private int pendingKeyboardCommand; // keyboard command waiting for its parameter, or 0
    private boolean lastWriteWasCommand;
    private boolean scanning = true;
    private int scanSet = 2;
    private final byte[] queue = new byte[OUTPUT_QUEUE];
    private int queueHead;
    private int queueCount;
    private int lastData;
    private boolean irqAsserted;
    private long unknownCommands;
    private long droppedOutput;

    /**
     * @param keyboardIrq ISA IRQ 1
     * @param exits receives the reset request ({@link VmExit.Reason#RESET}); {@code vm::requestExit}
     */
    public I8042(InterruptLine keyboardIrq, Consumer<VmExit> exits) {
        this.keyboardIrq = Objects.requireNonNull(keyboardIrq, "keyboardIrq");
        this.exits = Objects.requireNonNull(exits, "exits");
    }

    /** The data port, to register at {@value #DATA_PORT} (1 port). */
    public PortIoDevice dataPort() {
        return dataPort;
    }

    /** The command/status port, to register at {@value #COMMAND_PORT} (1 port). */
    public PortIoDevice commandPort() {
        return commandPort;
    }

    private final class DataPort implements PortIoDevice {
        @Override
        public int in(int offset, int size) {
            return offset == 0 ? readData() : 0xFF;
        }

        @Override
        public void out(int offset, int size, int value) {
            if (offset == 0) {
                writeData(value & 0xFF);
            }
        }
    }

    private final class CommandPort implements PortIoDevice {
        @Override
        public int in(int offset, int size) {
            return offset == 0 ? readStatus() : 0xFF;
        }

        @Override
        public void out(int offset, int size, int value) {
            if (offset == 0) {
                writeCommand(value & 0xFF);
            }
        }
    }

    // ---- guest side ----

    synchronized int readStatus() {
        int status = STATUS_KEYLOCK;
        if (queueCount > 0) {
            status |= STATUS_OBF;
        }
        if ((ctr & CTR_SYS) != 0) {
            status |= STATUS_SYS;
        }
        if (lastWriteWasCommand) {
            status |= STATUS_CMD;
        }
        return status; // IBF never set: input is consumed at once
    }

    synchronized int readData() {
        if (queueCount > 0) {
            lastData = queue[queueHead] & 0xFF;
            queueHead = (queueHead + 1) % queue.length;
            queueCount--;
            // One byte per interrupt: drop the line so the next byte, if any, raises a new edge.
            setIrq(false);
            updateIrq();
        }
        return lastData; // an empty buffer reads the last byte again, as on hardware
    }

    void writeCommand(int command) {
        String reset = null;
        synchronized (this) {
            lastWriteWasCommand = true;
            pendingCommand = 0;
            switch (command) {
                case CMD_READ_CTR -> push(ctr);
                case CMD_WRITE_CTR, CMD_WRITE_MODE, CMD_WRITE_OUTPUT_PORT, CMD_WRITE_KBD_BUFFER,
                        CMD_WRITE_AUX_BUFFER, CMD_WRITE_AUX_DEVICE -> pendingCommand = command;
                case CMD_AUX_DISABLE -> ctr |= CTR_AUXDIS;
                case CMD_AUX_ENABLE -> ctr &= ~CTR_AUXDIS;
                case CMD_AUX_TEST -> push(AUX_TEST_CLOCK_STUCK);
                case CMD_SELF_TEST -> {
                    ctr |= CTR_SYS;
                    push(SELF_TEST_OK);
                }
                case CMD_KBD_TEST -> push(0x00);
                case CMD_KBD_DISABLE -> ctr |= CTR_KBDDIS;
                case CMD_KBD_ENABLE -> ctr &= ~CTR_KBDDIS;
                case CMD_READ_MODE -> push(mode);
                case CMD_READ_OUTPUT_PORT -> push(outputPort);
                case CMD_A20_DISABLE -> outputPort &= ~OUTPUT_PORT_A20;
                case CMD_A20_ENABLE -> outputPort |= OUTPUT_PORT_A20;
                default -> {
                    if (command >= 0xF0) {
                        // Pulse output port lines: a low bit 0 in the mask pulses the reset line.
                        if ((command & OUTPUT_PORT_RESET) == 0) {
                            reset = String.format("command 0x%02x pulsed the reset line", command);
                        }
                    } else {
                        unknownCommands++;
                    }
                }
            }
            updateIrq();
        }
        if (reset != null) {
            requestReset(reset);
        }
    }

    void writeData(int value) {
        String reset = null;
        synchronized (this) {
            lastWriteWasCommand = false;
            int command = pendingCommand;
            pendingCommand = 0;
            switch (command) {
                case 0 -> writeKeyboard(value);
                case CMD_WRITE_CTR -> ctr = value;
                case CMD_WRITE_MODE -> mode = value;
                case CMD_WRITE_OUTPUT_PORT -> {
                    outputPort = value;
                    if ((value & OUTPUT_PORT_RESET) == 0) {
                        reset = String.format("output port write 0x%02x cleared the reset line", value);
                    }
                }
                // No AUX port: the AUX loopback answers as keyboard data, which Linux reads as absence.
                case CMD_WRITE_KBD_BUFFER, CMD_WRITE_AUX_BUFFER -> push(value);
                case CMD_WRITE_AUX_DEVICE -> { } // nothing is connected there
                default -> unknownCommands++;
            }
            updateIrq();
        }
        if (reset != null) {
            requestReset(reset);
        }
    }

    /** A byte for the keyboard itself: a command, or the parameter of the previous one. */
    private void writeKeyboard(int value) {
        int command = pendingKeyboardCommand;
        pendingKeyboardCommand = 0;
        if (command == KBD_SCAN_SET) {
            push(KBD_ACK);
            if (value == 0) {
                push(scanSet);
            } else if (value <= 3) {
                scanSet = value;
            }
            return;
        }
        if (command != 0) { // LED state or typematic rate: accepted and ignored
            push(KBD_ACK);
            return;
        }
        switch (value) {
            case KBD_SET_LEDS, KBD_SET_TYPEMATIC, KBD_SCAN_SET -> {
                push(KBD_ACK);
                pendingKeyboardCommand = value;
            }
            case KBD_ECHO -> push(KBD_ECHO);
            case KBD_GET_ID -> {
                // An MF2 keyboard: 0xAB 0x83, which translation turns into 0xAB 0x41.
                push(KBD_ACK);
                push(0xAB);
                push(translating() ? 0x41 : 0x83);
            }
            case KBD_ENABLE -> {
                push(KBD_ACK);
                scanning = true;
            }
            case KBD_DISABLE -> {
                push(KBD_ACK);
                scanning = false;
            }
            case KBD_RESET -> {
                push(KBD_ACK);
                push(KBD_BAT_OK);
                scanning = true;
                scanSet = 2;
            }
            default -> push(KBD_ACK); // defaults, resend, set-3 key modes: nothing to do
        }
    }

    private boolean translating() {
        return (ctr & CTR_XLATE) != 0;
    }

    private void push(int b) {
        if (queueCount == queue.length) {
            droppedOutput++;
            return;
        }
        queue[(queueHead + queueCount) % queue.length] = (byte) b;
        queueCount++;
    }

    private void updateIrq() {
        setIrq(queueCount > 0 && (ctr & CTR_KBDINT) != 0);
    }

    private void setIrq(boolean level) {
        if (level != irqAsserted) {
            irqAsserted = level;
            keyboardIrq.set(level);
        }
    }

    private void requestReset(String detail) {
        exits.accept(new VmExit(VmExit.Reason.RESET, -1, "the guest reset the machine through the i8042 controller: " + detail, null));
    }

    // ---- state ----

    /**
     * Writes the controller configuration byte, the output port, the mode byte, the controller and
     * keyboard commands waiting for their data byte, whether the last write was a command, the
     * keyboard's scanning state and scan code set, the output queue, the last byte read, and the
     * interrupt line's level. The status register follows from these.
     */
    @Override
    public synchronized void saveState(StateWriter out) {
        out.u8(ctr).u8(outputPort).u8(mode).u8(pendingCommand).u8(pendingKeyboardCommand);
        out.bool(lastWriteWasCommand).bool(scanning).u8(scanSet);
        byte[] queued = new byte[queueCount];
        for (int i = 0; i < queueCount; i++) {
            queued[i] = queue[(queueHead + i) % queue.length];
        }
        out.bytes(queued).u8(lastData).bool(irqAsserted);
    }

    /**
     * Takes the controller's state after checking it: the waiting commands must be ones that take a
     * data byte, the scan code set 1 to 3, the queue at most {@value #OUTPUT_QUEUE} bytes, and the
     * line level what the queue and configuration make it. A line that was high is raised again.
     */
    @Override
    public void restoreState(StateReader in) {
        int savedCtr = in.u8("the configuration byte");
        int savedOutputPort = in.u8("the output port");
        int savedMode = in.u8("the mode byte");
        int savedCommand = in.u8("the pending controller command");
        int savedKeyboardCommand = in.u8("the pending keyboard command");
        boolean savedLastWasCommand = in.bool("the command flag");
        boolean savedScanning = in.bool("the keyboard's scanning flag");
        int savedScanSet = in.u8("the scan code set");
        byte[] queued = in.bytes(OUTPUT_QUEUE, "the output queue");
        int savedLastData = in.u8("the last data byte");
        boolean savedLine = in.bool("the interrupt line level");
        switch (savedCommand) {
            case 0, CMD_WRITE_CTR, CMD_WRITE_MODE, CMD_WRITE_OUTPUT_PORT, CMD_WRITE_KBD_BUFFER, CMD_WRITE_AUX_BUFFER,
                    CMD_WRITE_AUX_DEVICE -> { }
            default -> throw in.fail(String.format("the pending controller command is 0x%02x, which takes no data byte", savedCommand));
        }
        switch (savedKeyboardCommand) {
            case 0, KBD_SET_LEDS, KBD_SET_TYPEMATIC, KBD_SCAN_SET -> { }
            default -> throw in.fail(String.format("the pending keyboard command is 0x%02x, which takes no parameter",
                    savedKeyboardCommand));
        }
        if (savedScanSet < 1 || savedScanSet > 3) {
            throw in.fail("the scan code set is " + savedScanSet + ", not 1, 2 or 3");
        }
        boolean level = queued.length > 0 && (savedCtr & CTR_KBDINT) != 0;
        if (savedLine != level) {
            throw in.fail("the interrupt line is saved " + (savedLine ? "high" : "low") + ", and the saved queue and"
                    + " configuration byte make it " + (level ? "high" : "low"));
        }
        synchronized (this) {
            ctr = savedCtr;
            outputPort = savedOutputPort;
            mode = savedMode;
            pendingCommand = savedCommand;
            pendingKeyboardCommand = savedKeyboardCommand;
            lastWriteWasCommand = savedLastWasCommand;
            scanning = savedScanning;
            scanSet = savedScanSet;
            System.arraycopy(queued, 0, queue, 0, queued.length);
            queueHead = 0;
            queueCount = queued.length;
            lastData = savedLastData;
            updateIrq(); // raises the line again when it was high
        }
    }

    // ---- host side ----

    /**
     * Types Ctrl-Alt-Delete on the keyboard (press and release), in the scan code set the guest
     * expects: set 1 while the controller translates, set 2 otherwise. Linux's keyboard driver
     * turns it into its ctrl-alt-del action: SIGINT to init when init has turned the kernel's own
     * handling off (busybox init and systemd do), otherwise an immediate restart, which reaches
     * this controller's reset line with {@code reboot=k}.
     *
     * @return false when the guest has the keyboard disabled or the output queue is too full
     */
    public synchronized boolean sendCtrlAltDel() {
        byte[] codes = translating() ? CTRL_ALT_DEL_SET1 : CTRL_ALT_DEL_SET2;
        if ((ctr & CTR_KBDDIS) != 0 || !scanning || queue.length - queueCount < codes.length) {
            return false;
        }
        for (byte b : codes) {
            push(b);
        }
        updateIrq();
        return true;
    }

    /** Controller commands and command data the device did not recognise. */
    public synchronized long unknownCommands() {
        return unknownCommands;
    }

    /** Bytes for the guest dropped because the output queue was full. */
    public synchronized long droppedOutputBytes() {
        return droppedOutput;
    }

    /** The controller configuration byte, as the guest last set it. */
    public synchronized int configuration() {
        return ctr;
    }

    private static byte[] bytes(int... values) {
        byte[] b = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            b[i] = (byte) values[i];
        }
        return b;
    }
}
