package dev.panamax.virtio.net;

import dev.panamax.sys.EventFd;
import dev.panamax.sys.Fd;
import java.io.ByteArrayOutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A backend in memory: packets (header and frame) a test {@link #offer}s go to the guest, what the
 * guest sends lands in {@link #sent}. Its descriptor is an eventfd, readable while packets wait.
 * It validates frames from the guest as the real backends do.
 */
final class FakeBackend implements NetBackend {
    final BlockingQueue<byte[]> sent = new LinkedBlockingQueue<>();
    final ConcurrentLinkedQueue<byte[]> waiting = new ConcurrentLinkedQueue<>();
    /** How many sends to refuse (as a full socket would) before taking frames again. */
    final AtomicInteger refusals = new AtomicInteger();
    final AtomicInteger receiveCalls = new AtomicInteger();
    private final EventFd readable = EventFd.create(true);
    private final Set<NetOffload> offloads;
    private final DropCounts dropped = new DropCounts();
    volatile Set<NetOffload> receiveOffloads;
    volatile boolean closed;
    /** What {@link #kind()} answers. */
    volatile String kind = "tap";

    FakeBackend(Set<NetOffload> offloads) {
        this.offloads = offloads;
    }

    void offer(byte[] packet) {
        waiting.add(packet);
        readable.signal();
    }

    @Override
    public String kind() {
        return kind;
    }

    @Override
    public String name() {
        return "fake0";
    }

    @Override
    public Set<NetOffload> offloads() {
        return offloads;
    }

    @Override
    public void setReceiveOffloads(Set<NetOffload> offloads) {
        receiveOffloads = offloads;
    }

    @Override
    public boolean send(MemorySegment[] packet, int count) {
        if (!VirtioNetHeader.acceptableFromGuest(packet[0], VirtioNetHeader.frameBytes(packet, count), offloads)) {
            dropped.countFromGuest();
            return true;
        }
        if (refusals.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
            return false;
        }
        ByteArrayOutputStream whole = new ByteArrayOutputStream();
        for (int i = 0; i < count; i++) {
            whole.writeBytes(packet[i].toArray(ValueLayout.JAVA_BYTE));
        }
        sent.add(whole.toByteArray());
        return true;
    }

    @Override
    public int receive(MemorySegment buffer) {
        receiveCalls.incrementAndGet();
        byte[] packet = waiting.poll();
        if (packet == null) {
            readable.read(); // then look again: an offer between the two leaves its packet, or its signal
            packet = waiting.poll();
            if (packet == null) {
                return 0;
            }
        }
        MemorySegment.copy(packet, 0, buffer, ValueLayout.JAVA_BYTE, 0, packet.length);
        return packet.length;
    }

    @Override
    public Fd descriptor() {
        return readable;
    }

    @Override
    public DropCounts dropped() {
        return dropped;
    }

    @Override
    public void close() {
        closed = true;
        readable.close();
    }
}
