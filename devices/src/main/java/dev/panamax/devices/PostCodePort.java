package dev.panamax.devices;

import dev.panamax.vm.PortIoDevice;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;

/**
 * Port 0x80, the POST-code port. Linux writes it for I/O delays; a sink here keeps those writes
 * from being reported as unhandled. It remembers the last code, which reads return.
 */
public final class PostCodePort implements PortIoDevice, Stateful {

    public static final int PORT = 0x80;
    public static final int PORT_COUNT = 1;

    private volatile int lastCode;

    @Override
    public int in(int offset, int size) {
        return lastCode;
    }

    @Override
    public void out(int offset, int size, int value) {
        lastCode = value & 0xFF;
    }

    public int lastCode() {
        return lastCode;
    }

    /** Writes the last code, which guest reads return. */
    @Override
    public void saveState(StateWriter out) {
        out.u8(lastCode);
    }

    @Override
    public void restoreState(StateReader in) {
        lastCode = in.u8("the last POST code");
    }
}
