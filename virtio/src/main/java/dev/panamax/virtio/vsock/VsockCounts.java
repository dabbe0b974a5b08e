package dev.panamax.virtio.vsock;

import java.util.concurrent.atomic.AtomicLong;

/** What a vsock device carried and refused, counted by the device, read by anyone (tests, logs). */
public final class VsockCounts {
    private final AtomicLong fromGuestBytes = new AtomicLong();
    private final AtomicLong toGuestBytes = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong reset = new AtomicLong();
    private final AtomicLong refused = new AtomicLong();

    /** Stream bytes the device took from the guest (for the host socket at once or held until it takes them). */
    public long fromGuestBytes() {
        return fromGuestBytes.get();
    }

    /** Stream bytes the device gave the guest. */
    public long toGuestBytes() {
        return toGuestBytes.get();
    }

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

    void countFromGuest(int bytes) {
        fromGuestBytes.addAndGet(bytes);
    }

    void countToGuest(int bytes) {
        toGuestBytes.addAndGet(bytes);
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
        return fromGuestBytes() + " bytes from the guest, " + toGuestBytes() + " to it, " + dropped() + " packets dropped, " + reset() + " reset, " + refused() + " connections refused";
    }
}
