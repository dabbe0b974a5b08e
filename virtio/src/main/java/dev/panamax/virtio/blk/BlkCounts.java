package dev.panamax.virtio.blk;

import java.util.concurrent.atomic.LongAdder;

/**
 * What a virtio-blk device did since it was made, under Firecracker's metric names: counted by
 * the device's queue threads (one per queue, hence adders rather than one contended atomic), read
 * by anyone.
 */
public final class BlkCounts {
    private final LongAdder readCount = new LongAdder();
    private final LongAdder readBytes = new LongAdder();
    private final LongAdder writeCount = new LongAdder();
    private final LongAdder writeBytes = new LongAdder();
    private final LongAdder flushCount = new LongAdder();
    private final LongAdder invalidRequests = new LongAdder();

    /** Reads done ({@code read_count}). */
    public long readCount() {
        return readCount.sum();
    }

    /** Bytes read from the disk into the guest ({@code read_bytes}). */
    public long readBytes() {
        return readBytes.sum();
    }

    /** Writes done ({@code write_count}). */
    public long writeCount() {
        return writeCount.sum();
    }

    /** Bytes written from the guest to the disk ({@code write_bytes}). */
    public long writeBytes() {
        return writeBytes.sum();
    }

    /** Flushes done ({@code flush_count}). */
    public long flushCount() {
        return flushCount.sum();
    }

    /**
     * Requests answered IOERR or UNSUPP for what they asked, not for a failing disk: outside the
     * disk, not whole sectors, a write to a read-only disk, an unknown type ({@code invalid_reqs_count}).
     */
    public long invalidRequests() {
        return invalidRequests.sum();
    }

    void countRead(long bytes) {
        readCount.increment();
        readBytes.add(bytes);
    }

    void countWrite(long bytes) {
        writeCount.increment();
        writeBytes.add(bytes);
    }

    void countFlush() {
        flushCount.increment();
    }

    void countInvalid() {
        invalidRequests.increment();
    }
}
