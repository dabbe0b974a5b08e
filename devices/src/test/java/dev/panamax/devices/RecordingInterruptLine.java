package dev.panamax.devices;

import dev.panamax.vm.InterruptLine;
import java.util.ArrayList;
import java.util.List;

/** An interrupt line that remembers its level and every change, as the interrupt controller would see them. */
final class RecordingInterruptLine implements InterruptLine {
    private final List<Boolean> changes = new ArrayList<>();
    private boolean level;

    @Override
    public synchronized void set(boolean asserted) {
        level = asserted;
        changes.add(asserted);
    }

    synchronized boolean asserted() {
        return level;
    }

    /** Rising edges seen so far: what an edge-triggered PIC/IOAPIC pin would latch. */
    synchronized int risingEdges() {
        int edges = 0;
        boolean previous = false;
        for (boolean c : changes) {
            if (c && !previous) {
                edges++;
            }
            previous = c;
        }
        return edges;
    }

    synchronized List<Boolean> changes() {
        return List.copyOf(changes);
    }

    synchronized void clearHistory() {
        changes.clear();
    }
}
