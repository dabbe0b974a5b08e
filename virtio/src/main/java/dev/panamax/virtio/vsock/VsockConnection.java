package dev.panamax.virtio.vsock;

import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.SocketChannel;

/**
 * One stream between a guest port and a host Unix socket, with its state and the credit each side
 * gave the other. Guarded by its {@link VsockMuxer}'s lock.
 *
 * <p>Credit, both ways as the specification counts it (5.10.6.3), in free-running u32 counters:
 * the guest may have {@link VsockMuxer#BUFFER_BYTES} bytes sent and not yet forwarded to the host
 * socket ({@code received - forwarded}); this side may send the guest {@code peerBufAlloc - (sent -
 * peerForwarded)} bytes.
 */
final class VsockConnection {
    enum State {
        /** Accepted on the host's socket; its {@code CONNECT <port>} line not read yet. Not in the connection table. */
        AWAIT_CONNECT_LINE,
        /** A host program asked for a guest port: REQUEST sent (or to be sent), no RESPONSE yet. */
        LOCAL_INIT,
        ESTABLISHED
    }

    // Control packets waiting for the RX queue, as bits.
    static final int SEND_REQUEST = 1;
    static final int SEND_RESPONSE = 2;
    static final int SEND_CREDIT_UPDATE = 4;
    static final int SEND_CREDIT_REQUEST = 8;

    final SocketChannel channel;
    SelectionKey key;
    State state;
    /** The host side's port (CID 2) and the guest's. */
    int hostPort;
    int guestPort;
    /** Whether a host program asked for this connection (its host port was allocated here). */
    final boolean hostInitiated;
    /** When a connection in AWAIT_CONNECT_LINE or LOCAL_INIT is given up, in System.nanoTime() terms. */
    long deadline;
    /** The CONNECT line as read so far, one byte at a time so no byte of the stream after it is taken. */
    final StringBuilder connectLine = new StringBuilder();

    int pendingControl;
    /** The host socket had something to read (or its end) when last watched. */
    boolean hostReadable;
    boolean hostEnded;
    /** SHUTDOWN flags the guest sent, accumulated. */
    int guestShutdown;
    boolean outputShut;

    // Guest to host.
    int received;
    int forwarded;
    int lastForwardedTold;
    /** Bytes from the guest the host socket has not taken yet, in write mode; allocated when first needed. */
    ByteBuffer unsent;
    /** The {@code OK <port>} line, before any byte from the guest. */
    ByteBuffer reply;

    // Host to guest.
    int sent;
    int peerBufAlloc;
    int peerForwarded;
    boolean creditRequested;

    VsockConnection(SocketChannel channel, State state, boolean hostInitiated) {
        this.channel = channel;
        this.state = state;
        this.hostInitiated = hostInitiated;
    }

    /** The table's key: host port in the high half, guest port in the low one. */
    static long key(int hostPort, int guestPort) {
        return (long) hostPort << 32 | Integer.toUnsignedLong(guestPort);
    }

    long key() {
        return key(hostPort, guestPort);
    }

    /** Bytes this side may send the guest now. */
    long peerCredit() {
        long inFlight = Integer.toUnsignedLong(sent - peerForwarded);
        return Math.max(0, Integer.toUnsignedLong(peerBufAlloc) - inFlight);
    }

    /** Bytes from the guest not yet taken by the host socket. */
    long held() {
        return Integer.toUnsignedLong(received - forwarded);
    }

    boolean hasUnsent() {
        return (unsent != null && unsent.position() > 0) || (reply != null && reply.hasRemaining());
    }

    /** Whether data from the host may go to the guest: established, the guest still receiving, credit left. */
    boolean mayRead() {
        return state == State.ESTABLISHED && !hostEnded && (guestShutdown & VsockHeader.SHUTDOWN_RCV) == 0;
    }

    /** Whether the RX queue has something to send for this connection. */
    boolean hasWorkForGuest() {
        return pendingControl != 0 || (hostReadable && mayRead() && peerCredit() > 0);
    }

    @Override
    public String toString() {
        return "vsock connection host port " + Integer.toUnsignedString(hostPort) + " <-> guest port " + Integer.toUnsignedString(guestPort);
    }
}
