package dev.panamax.virtio.vsock;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The 44-byte header of every virtio-vsock packet ({@code struct virtio_vsock_hdr}, VIRTIO 1.x
 * 5.10.6), little-endian. One mutable object per I/O thread: {@link #decode} fills it from a copy of
 * the guest's bytes (so the guest cannot change a field after it was checked), {@link #encode}
 * writes it for the guest. Field values are kept as Java ints and longs; u32 fields are compared and
 * subtracted as unsigned 32-bit counters.
 */
final class VsockHeader {
    static final int BYTES = 44;
    static final long HOST_CID = 2;
    static final int TYPE_STREAM = 1;

    static final int OP_REQUEST = 1;
    static final int OP_RESPONSE = 2;
    static final int OP_RST = 3;
    static final int OP_SHUTDOWN = 4;
    static final int OP_RW = 5;
    static final int OP_CREDIT_UPDATE = 6;
    static final int OP_CREDIT_REQUEST = 7;

    /** SHUTDOWN flags: the sender will receive no more, send no more. */
    static final int SHUTDOWN_RCV = 1;
    static final int SHUTDOWN_SEND = 2;
    static final int SHUTDOWN_BOTH = SHUTDOWN_RCV | SHUTDOWN_SEND;

    /** The largest payload of one packet, as Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE. */
    static final int MAX_PAYLOAD = 64 * 1024;

    long srcCid;
    long dstCid;
    int srcPort;
    int dstPort;
    int len;
    int type;
    int op;
    int flags;
    int bufAlloc;
    int fwdCnt;

    /** Reads the fields from {@code bytes[0, 44)}. */
    void decode(byte[] bytes) {
        ByteBuffer b = ByteBuffer.wrap(bytes, 0, BYTES).order(ByteOrder.LITTLE_ENDIAN);
        srcCid = b.getLong(0);
        dstCid = b.getLong(8);
        srcPort = b.getInt(16);
        dstPort = b.getInt(20);
        len = b.getInt(24);
        type = Short.toUnsignedInt(b.getShort(28));
        op = Short.toUnsignedInt(b.getShort(30));
        flags = b.getInt(32);
        bufAlloc = b.getInt(36);
        fwdCnt = b.getInt(40);
    }

    /** Writes the fields into {@code bytes[0, 44)}. */
    void encode(byte[] bytes) {
        ByteBuffer b = ByteBuffer.wrap(bytes, 0, BYTES).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0, srcCid).putLong(8, dstCid).putInt(16, srcPort).putInt(20, dstPort).putInt(24, len)
                .putShort(28, (short) type).putShort(30, (short) op).putInt(32, flags).putInt(36, bufAlloc).putInt(40, fwdCnt);
    }

    /** A packet from the host (CID 2) to the guest, of type stream; its length, flags and credit fields zero. */
    void toGuest(long guestCid, int hostPort, int guestPort, int operation) {
        srcCid = HOST_CID;
        dstCid = guestCid;
        srcPort = hostPort;
        dstPort = guestPort;
        len = 0;
        type = TYPE_STREAM;
        op = operation;
        flags = 0;
        bufAlloc = 0;
        fwdCnt = 0;
    }

    /**
     * What is wrong with a packet the guest with CID {@code guestCid} sent in a chain of
     * {@code readable} device-readable bytes, or null: the checks that need no connection.
     * {@link Verdict#DROP} for a packet that cannot be answered (no room for a header, or not from
     * the guest or not to the host), {@link Verdict#RESET} for one whose ports are trustworthy enough
     * to answer with RST.
     */
    Verdict check(long guestCid, long readable) {
        if (srcCid != guestCid || dstCid != HOST_CID) {
            return Verdict.DROP;
        }
        if (type != TYPE_STREAM) {
            return Verdict.RESET;
        }
        if (op < OP_REQUEST || op > OP_CREDIT_REQUEST) {
            return Verdict.RESET;
        }
        long length = Integer.toUnsignedLong(len);
        if (length > MAX_PAYLOAD || length > readable - BYTES || (op != OP_RW && length != 0)) {
            return Verdict.RESET;
        }
        return Verdict.ACCEPT;
    }

    /** How {@link #check} judged a packet. */
    enum Verdict {
        ACCEPT,
        RESET,
        DROP
    }

    /** For logs. */
    String describe() {
        return String.format("op %d type %d %d:%d -> %d:%d len %d flags 0x%x buf_alloc %d fwd_cnt %d", op, type, srcCid,
                Integer.toUnsignedLong(srcPort), dstCid, Integer.toUnsignedLong(dstPort), Integer.toUnsignedLong(len), flags,
                Integer.toUnsignedLong(bufAlloc), Integer.toUnsignedLong(fwdCnt));
    }
}
