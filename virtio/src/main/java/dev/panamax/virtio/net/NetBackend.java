package dev.panamax.virtio.net;

import dev.panamax.sys.Fd;
import dev.panamax.sys.Tap;
import java.lang.foreign.MemorySegment;
import java.util.Set;

/**
 * Where a virtio-net device's frames go and come from: a TAP device ({@link TapBackend}) or passt's
 * user-mode network ({@link PasstBackend}). Frames cross this interface as the virtqueues carry them,
 * each behind a {@link VirtioNetHeader} of {@link #HEADER_BYTES}. Frames from the guest are
 * validated here: one that is malformed, or asks for an offload the backend does not offer, is
 * dropped and counted, never passed on. Nothing here blocks: the device's I/O thread waits for
 * {@link #descriptor()} in its {@link dev.panamax.sys.Poller}, beside its queue and stop eventfds.
 * {@link #send} and {@link #receive} may run on different threads, each on one at a time.
 */
public interface NetBackend extends AutoCloseable {
    /** Bytes of the virtio-net header before every frame in {@link #send} and {@link #receive}. */
    int HEADER_BYTES = VirtioNetHeader.BYTES;
    /** The most parts {@link #send} takes a packet in, its header included (a tap's one writev). */
    int MAX_PARTS = Tap.MAX_PARTS;
    /** The room {@link #receive} needs: the header and the longest frame. */
    int RECEIVE_BUFFER_BYTES = HEADER_BYTES + VirtioNetHeader.MAX_FRAME_BYTES;

    /**
     * The offloads this backend honours in both directions: it passes on frames from the guest that
     * use them, and can be told ({@link #setReceiveOffloads}) to hand the guest frames that use them.
     * The device offers the guest no others.
     */
    Set<NetOffload> offloads();

    /**
     * The offloads the guest's driver accepted for frames it receives (its {@code GUEST_*} features),
     * a subset of {@link #offloads()}; frames {@link #receive} returns use no others. None until called.
     */
    void setReceiveOffloads(Set<NetOffload> offloads);

    /**
     * Sends one frame from the guest, gathered from {@code packet[0, count)}: {@code packet[0]} is
     * exactly its header (which the caller copied out of the guest, so it cannot change under the
     * checks), the rest the frame in order, each a native segment (the guest's own buffers). Returns
     * true when the frame is done with (sent, or dropped and counted in {@link #dropped()}), false
     * when the backend cannot take it now: then call {@code send} again with the same packet once
     * {@link #descriptor()} is writable (a stream backend may have sent part of it, and resumes).
     */
    boolean send(MemorySegment[] packet, int count);

    /**
     * Receives one frame for the guest into {@code buffer} (at least {@link #RECEIVE_BUFFER_BYTES}),
     * header first, with {@code num_buffers} 1; returns the header and frame's length, or 0 when no
     * whole frame is waiting. Malformed frames are skipped and counted in {@link #dropped()}.
     * After a 0, {@link #descriptor()} turns readable when there may be more.
     */
    int receive(MemorySegment buffer);

    /**
     * The descriptor a device's poller watches: readable when {@link #receive} may return a frame,
     * writable when a refused {@link #send} may succeed. The backend owns it: never read, write or close it.
     */
    Fd descriptor();

    /** What kind of backend this is, as a snapshot names it: {@code tap} or {@code passt}. */
    String kind();

    /**
     * Which one of its kind, as a snapshot names it: the tap's interface name, the socket of a passt
     * someone else started; empty for a passt started for this NIC alone.
     */
    String name();

    /** The frames dropped so far, each way. */
    DropCounts dropped();

    /** Closes the backend and ends what it started; idempotent. */
    @Override
    void close();
}
