package dev.panamax.virtio.net;

import java.util.concurrent.atomic.AtomicLong;

/** How many frames a backend dropped, each way; counted by the backend, read by anyone. */
public final class DropCounts {
    private final AtomicLong fromGuest = new AtomicLong();
    private final AtomicLong toGuest = new AtomicLong();

    /** Frames from the guest: malformed, asking for an offload not offered, or refused by the host. */
    public long fromGuest() {
        return fromGuest.get();
    }

    /** Frames for the guest: too short, too long, or malformed. */
    public long toGuest() {
        return toGuest.get();
    }

    void countFromGuest() {
        fromGuest.incrementAndGet();
    }

    void countToGuest() {
        toGuest.incrementAndGet();
    }

    @Override
    public String toString() {
        return fromGuest() + " from the guest, " + toGuest() + " to it";
    }
}
