package dev.panamax.virtio.net;

import dev.panamax.sys.Fd;
import java.lang.foreign.MemorySegment;
import java.util.Set;

/**
 * The host end of a {@link VirtioNet} built before its tap or passt may be opened (a migration's
 * destination, while the source still holds them), until {@link VirtioNet#bindBackend} replaces
 * it. It carries the kind a snapshot's identity names; no frame may pass through it, and the device
 * must not run on it.
 */
final class UnboundBackend implements NetBackend {
    private final String kind;
    private final DropCounts dropped = new DropCounts();

    UnboundBackend(String kind) {
        this.kind = kind;
    }

    @Override
    public Set<NetOffload> offloads() {
        return Set.of();
    }

    @Override
    public void setReceiveOffloads(Set<NetOffload> offloads) {
        throw notBound();
    }

    @Override
    public boolean send(MemorySegment[] packet, int count) {
        throw notBound();
    }

    @Override
    public int receive(MemorySegment buffer) {
        throw notBound();
    }

    @Override
    public Fd descriptor() {
        throw notBound();
    }

    private IllegalStateException notBound() {
        return new IllegalStateException("the " + kind + " backend of this network interface is not opened yet");
    }

    @Override
    public String kind() {
        return kind;
    }

    @Override
    public String name() {
        return "";
    }

    @Override
    public DropCounts dropped() {
        return dropped;
    }

    @Override
    public void close() {
        // nothing was opened
    }
}
