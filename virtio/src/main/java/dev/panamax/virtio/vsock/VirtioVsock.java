package dev.panamax.virtio.vsock;

import dev.panamax.sys.SyscallProfile;
import dev.panamax.sys.EventFd;
import dev.panamax.virtio.DescriptorChain;
import dev.panamax.virtio.VirtQueue;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.vm.ThreadSandbox;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.function.BooleanSupplier;

/**
 * A virtio socket device (VIRTIO 1.x, 5.10): stream connections between the guest (its CID in the
 * configuration space) and host programs, through Firecracker's Unix-socket host side
 * ({@link VsockMuxer}). Stream sockets only (no SEQPACKET), VIRTIO_F_VERSION_1.
 *
 * <p>Three queues, each with its I/O thread: the transmit thread takes each packet the guest sent,
 * checks its header ({@link VsockHeader#check}) and hands it to the host side; the receive thread
 * fills the guest's buffers with what the host side has for it (control packets, and data read
 * straight from host sockets), waiting on its queue's eventfd, which the host side also signals; the
 * event thread uses an event buffer only for the transport reset after a restore.
 *
 * <p>A malformed packet from the guest is answered with RST (its connection, if any, ends) or, when
 * it cannot be answered, dropped; both are counted in {@link #counts()}. Only a malformed queue or
 * buffer (an RX buffer too small for a header) fails the whole device.
 *
 * <p>Snapshots keep no connection, as Firecracker's: the identity is the guest CID and the socket
 * path; after a restore of a running device the guest is sent VIRTIO_VSOCK_EVENT_TRANSPORT_RESET,
 * so it drops its sockets.
 */
public final class VirtioVsock extends VirtioDevice {
    public static final int DEVICE_TYPE = 19;
    public static final int DEFAULT_QUEUE_SIZE = 256;
    public static final int QUEUE_COUNT = 3;
    static final int RX = 0;
    static final int TX = 1;
    static final int EVENT = 2;
    /** struct virtio_vsock_config: le64 guest_cid. */
    static final int CONFIG_SIZE = 8;
    /** struct virtio_vsock_event: le32 id. */
    static final int EVENT_BYTES = 4;
    static final int VIRTIO_VSOCK_EVENT_TRANSPORT_RESET = 0;
    /** The lowest CID a guest can have: 0 to 2 are the hypervisor, the local and the host. */
    public static final long MIN_GUEST_CID = 3;
    /** CIDs are u32 in Linux; 2^32-1 is VMADDR_CID_ANY. */
    public static final long MAX_GUEST_CID = 0xffff_fffeL;

    private final long guestCid;
    private final VsockCounts counts = new VsockCounts();
    private final VsockMuxer muxer;
    private volatile boolean transportResetPending;

    // The transmit thread's.
    private final byte[] txHeaderBytes = new byte[VsockHeader.BYTES];
    private final VsockHeader txHeader = new VsockHeader();
    // The receive thread's.
    private final byte[] rxHeaderBytes = new byte[VsockHeader.BYTES];
    private final VsockHeader rxHeader = new VsockHeader();
    private final ByteBuffer rxPayload = ByteBuffer.allocate(VsockHeader.MAX_PAYLOAD);

    /**
     * @param id       names the device in logs and thread names
     * @param guestCid the guest's context ID, {@link #MIN_GUEST_CID} to {@link #MAX_GUEST_CID}
     * @param udsPath  the host side's Unix socket; nothing may be there yet, and {@link #close} removes it
     * @throws UncheckedIOException when the socket cannot be made
     */
    public VirtioVsock(String id, long guestCid, Path udsPath, int queueSize) {
        this(id, guestCid, udsPath, queueSize, VsockMuxer.MAX_CONNECTIONS);
    }

    /** With at most {@code maxConnections} connections at once, for tests of the limit. */
    VirtioVsock(String id, long guestCid, Path udsPath, int queueSize, int maxConnections) {
        super("virtio-vsock (" + id + ")", DEVICE_TYPE, 0, QUEUE_COUNT, queueSize, CONFIG_SIZE);
        if (guestCid < MIN_GUEST_CID || guestCid > MAX_GUEST_CID) {
            super.close();
            throw new IllegalArgumentException("guest CID " + guestCid + " is not from " + MIN_GUEST_CID + " to " + MAX_GUEST_CID);
        }
        this.guestCid = guestCid;
        ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN).putLong(0, guestCid);
        try {
            this.muxer = new VsockMuxer(name(), guestCid, udsPath, counts, maxConnections, () -> notifyEvent(RX).signal());
        } catch (IOException e) {
            super.close();
            throw new UncheckedIOException("cannot make the vsock socket " + udsPath + ": " + e.getMessage(), e);
        }
    }

    public long guestCid() {
        return guestCid;
    }

    public Path udsPath() {
        return muxer.udsPath();
    }

    /** Packets dropped or reset, connections refused. */
    public VsockCounts counts() {
        return counts;
    }

    /** Open connections, and host programs' connections still sending their CONNECT line. */
    public int connectionCount() {
        return muxer.connectionCount();
    }

    @Override
    protected void saveIdentity(StateWriter out) {
        out.i64(guestCid).string(udsPath().toString());
    }

    @Override
    protected void checkIdentity(StateReader in) {
        long savedCid = in.i64("guest CID");
        if (savedCid != guestCid) {
            throw in.fail("the snapshot's " + name() + " has guest CID " + Long.toUnsignedString(savedCid) + ", and this VM's has "
                    + guestCid);
        }
        String savedPath = in.string(4096, "socket path");
        if (!savedPath.equals(udsPath().toString())) {
            throw in.fail("the snapshot's " + name() + " has its socket at " + savedPath + ", and this VM's at " + udsPath());
        }
    }

    /** The guest's driver forgot every connection: the host sides are closed. */
    @Override
    protected void afterReset() {
        transportResetPending = false;
        muxer.dropAll();
    }

    /**
     * A restored running device tells the guest its connections are gone (the snapshot kept none),
     * and gives new ones host ports the snapshot's did not have.
     */
    @Override
    protected void afterStateApplied(int status) {
        transportResetPending = (status & DRIVER_OK) != 0 && (status & DEVICE_NEEDS_RESET) == 0;
        muxer.moveLocalPorts();
    }

    /** Whether the transport reset event is still to be delivered. */
    boolean transportResetPending() {
        return transportResetPending;
    }

    @Override
    protected void serve(VirtQueue queue, BooleanSupplier running) {
        switch (queue.index()) {
            case RX -> receive(queue, running);
            case EVENT -> events(queue, running);
            default -> super.serve(queue, running);
        }
    }

    /** One packet from the guest; nothing is written back. */
    @Override
    protected int handle(VirtQueue queue, DescriptorChain chain) {
        if (chain.readableLength() < VsockHeader.BYTES) {
            counts.countDropped();
            return 0;
        }
        chain.read(0, txHeaderBytes, 0, VsockHeader.BYTES);
        txHeader.decode(txHeaderBytes);
        muxer.fromGuest(txHeader, txHeader.check(guestCid, chain.readableLength()), chain);
        return 0;
    }

    private void receive(VirtQueue queue, BooleanSupplier running) {
        DescriptorChain chain = queue.newChain();
        EventFd notify = notifyEvent(RX);
        while (running.getAsBoolean()) {
            boolean used = false;
            while (running.getAsBoolean() && muxer.hasWorkForGuest()) {
                if (!queue.pop(chain)) {
                    if (queue.armNotification()) {
                        continue;
                    }
                    break;
                }
                if (chain.writableLength() < VsockHeader.BYTES) {
                    throw new VirtioProtocolException("queue " + RX + ": receive buffer at descriptor " + chain.head() + " has "
                            + chain.writableLength() + " writable bytes, less than the " + VsockHeader.BYTES + "-byte header");
                }
                int room = (int) Math.min(chain.writableLength() - VsockHeader.BYTES, VsockHeader.MAX_PAYLOAD);
                if (!muxer.nextForGuest(rxHeader, rxPayload, room)) {
                    queue.unpop(1);
                    break;
                }
                rxHeader.encode(rxHeaderBytes);
                chain.write(0, rxHeaderBytes, 0, VsockHeader.BYTES);
                int length = rxHeader.op == VsockHeader.OP_RW ? rxHeader.len : 0;
                if (length > 0) {
                    chain.write(VsockHeader.BYTES, rxPayload.array(), 0, length);
                }
                queue.addUsed(chain.head(), VsockHeader.BYTES + length);
                used = true;
            }
            if (used) {
                interruptIfWanted(queue);
            }
            if (running.getAsBoolean()) {
                notify.read();
            }
        }
    }

    /** Uses an event buffer only to deliver the transport reset. */
    private void events(VirtQueue queue, BooleanSupplier running) {
        DescriptorChain chain = queue.newChain();
        EventFd notify = notifyEvent(EVENT);
        while (running.getAsBoolean()) {
            if (transportResetPending) {
                if (queue.pop(chain)) {
                    if (chain.writableLength() < EVENT_BYTES) {
                        throw new VirtioProtocolException("queue " + EVENT + ": event buffer at descriptor " + chain.head() + " has "
                                + chain.writableLength() + " writable bytes, less than the " + EVENT_BYTES + "-byte event");
                    }
                    byte[] event = new byte[EVENT_BYTES];
                    ByteBuffer.wrap(event).order(ByteOrder.LITTLE_ENDIAN).putInt(0, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
                    chain.write(0, event, 0, EVENT_BYTES);
                    queue.addUsed(chain.head(), EVENT_BYTES);
                    transportResetPending = false;
                    interruptIfWanted(queue);
                    continue;
                }
                if (queue.armNotification()) {
                    continue;
                }
            }
            notify.read();
        }
    }

    /** Stops the device, then the host side (closing every connection and removing the socket). */
    @Override
    public void close() {
        muxer.close(); // first: its thread signals the receive queue's eventfd, which super.close() closes
        super.close();
    }

    /** The queues' threads and the host side's thread alike. */
    @Override
    public void confineIoThreads(ThreadSandbox sandbox) {
        super.confineIoThreads(sandbox);
        muxer.confine(sandbox);
    }

    @Override
    protected SyscallProfile ioThreadProfile() {
        return SyscallProfile.VSOCK;
    }
}
