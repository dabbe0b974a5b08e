package dev.panamax.virtio.vsock;

import java.util.concurrent.atomic.AtomicLong;

/** What a vsock device refused, counted by the device, read by anyone (tests, logs). */
public final class VsockCounts {
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong reset = new AtomicLong();
    private final AtomicLong refused = new AtomicLong();

    /** Packets from the guest dropped unanswered: too short for a header, or not from the guest's CID to the host's. */
    public long dropped() {
        return dropped.get();
    }

    /** Packets from the guest answered with RST because they broke the protocol: malformed, or over the credit given. */
    public long reset() {
        return reset.get();
    }

    /** Connections refused for want of room: more than {@link VsockMuxer#MAX_CONNECTIONS}, or too many RSTs waiting. */
    public long refused() {
        return refused.get();
    }

    void countDropped() {
        dropped.incrementAndGet();
    }

    void countReset() {
        reset.incrementAndGet();
    }

    void countRefused() {
        refused.incrementAndGet();
    }

    @Override
    public String toString() {
        return dropped() + " packets dropped, " + reset() + " reset, " + refused() + " connections refused";
    }
}
