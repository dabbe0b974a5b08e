package dev.panamax.storage;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * Reads and writes of several device requests handed to the host together and completed together
 * ({@link BlockBackend#batchedIo}): one system call for a batch where each would take its own. For
 * one thread at a time. A request's buffers must stay untouched until {@link #complete} returns.
 */
public interface BatchedIo extends AutoCloseable {

    /**
     * Queues a scattered read of the disk from {@code offset} into native {@code buffers[0, count)}:
     * the twin of {@link BlockBackend#read(long, MemorySegment[], int)}, bytes past the end of the
     * file read as zeros. {@code tag} (0 to the batch's size - 1) names it in {@link #complete}.
     *
     * @return false, queueing nothing, when the batch is full: complete it and queue again
     */
    boolean read(long offset, MemorySegment[] buffers, int count, int tag);

    /**
     * Queues a gathering write: the twin of {@link BlockBackend#write(long, MemorySegment[], int)}.
     *
     * @return false when the batch is full
     * @throws IOException when the write is refused before it is queued (a read-only disk, or data
     *     that would change the format the disk is detected as)
     */
    boolean write(long offset, MemorySegment[] buffers, int count, int tag) throws IOException;

    /**
     * Carries out everything queued and returns when all of it is done: {@code failures[tag]} gets the
     * error of each request that failed and null for each that did not.
     *
     * @throws IOException when the batch could not be handed to the host at all; its requests' state is unknown
     */
    void complete(IOException[] failures) throws IOException;

    @Override
    void close();
}
