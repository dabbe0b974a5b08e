package dev.panamax.virtio.net;

import java.util.concurrent.atomic.LongAdder;

/**
 * Frames and bytes a virtio-net device moved since it was made, under Firecracker's metric names
 * ({@code rx_*}: to the guest, {@code tx_*}: from it); bytes are the frames' own, without the
 * virtio-net header. Each way is counted by its queue's thread, read by anyone.
 */
public final class NetCounts {
    private final LongAdder receivedFrames = new LongAdder();
    private final LongAdder receivedBytes = new LongAdder();
    private final LongAdder transmittedFrames = new LongAdder();
    private final LongAdder transmittedBytes = new LongAdder();

    /** Frames given to the guest ({@code rx_packets_count}). */
    public long receivedFrames() {
        return receivedFrames.sum();
    }

    /** Bytes of the frames given to the guest ({@code rx_bytes_count}). */
    public long receivedBytes() {
        return receivedBytes.sum();
    }

    /** Frames from the guest the backend took ({@code tx_packets_count}). */
    public long transmittedFrames() {
        return transmittedFrames.sum();
    }

    /** Bytes of the frames from the guest the backend took ({@code tx_bytes_count}). */
    public long transmittedBytes() {
        return transmittedBytes.sum();
    }

    void countReceived(long frameBytes) {
        receivedFrames.increment();
        receivedBytes.add(frameBytes);
    }

    void countTransmitted(long frameBytes) {
        transmittedFrames.increment();
        transmittedBytes.add(frameBytes);
    }
}
