package dev.panamax.devices.pci;

import dev.panamax.vm.MsiVector;
import java.util.ArrayList;
import java.util.List;

/** Records what a device does with an MSI vector. */
final class RecordingMsiVector implements MsiVector {
    final List<String> events = new ArrayList<>();

    @Override
    public void program(long address, int data) {
        events.add("program " + Long.toHexString(address) + "/" + data);
    }

    @Override
    public void signal() {
        events.add("signal");
    }

    @Override
    public void close() {
        events.add("close");
    }
}
