package dev.panamax.virtio;

/**
 * One queue as the driver programs it through the transport: size, enable and the guest-physical
 * addresses of its three parts. Nothing here is trusted; {@link VirtioDevice} checks the values when
 * the driver sets DRIVER_OK. Written from vCPU threads, read by the device: each field is volatile.
 */
public final class QueueSettings {
    private final int maxSize;
    private volatile int size;
    private volatile boolean ready;
    private volatile long descTable;
    private volatile long availRing;
    private volatile long usedRing;

    QueueSettings(int maxSize) {
        this.maxSize = maxSize;
        reset();
    }

    /** Back to the state after a device reset: the maximum size, not ready, addresses 0. */
    void reset() {
        size = maxSize;
        ready = false;
        descTable = 0;
        availRing = 0;
        usedRing = 0;
    }

    public int size() {
        return size;
    }

    public void setSize(int size) {
        this.size = size;
    }

    public boolean ready() {
        return ready;
    }

    public void setReady(boolean ready) {
        this.ready = ready;
    }

    public long descTable() {
        return descTable;
    }

    public void setDescTable(long address) {
        this.descTable = address;
    }

    public long availRing() {
        return availRing;
    }

    public void setAvailRing(long address) {
        this.availRing = address;
    }

    public long usedRing() {
        return usedRing;
    }

    public void setUsedRing(long address) {
        this.usedRing = address;
    }
}
