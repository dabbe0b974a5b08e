package dev.panamax.virtio.net;

import static java.lang.foreign.MemoryLayout.structLayout;

import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Set;

/**
 * The header before every frame on a virtio-net queue and on a backend: {@code struct
 * virtio_net_hdr_v1} of {@code <linux/virtio_net.h>}, little-endian, with {@code num_buffers}
 * (12 bytes). A test compares the layout and constants with the C header.
 */
public final class VirtioNetHeader {
    private VirtioNetHeader() {}

    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public static final StructLayout LAYOUT = structLayout(
            ValueLayout.JAVA_BYTE.withName("flags"), ValueLayout.JAVA_BYTE.withName("gso_type"),
            LE16.withName("hdr_len"), LE16.withName("gso_size"), LE16.withName("csum_start"),
            LE16.withName("csum_offset"), LE16.withName("num_buffers")).withName("virtio_net_hdr_v1");

    public static final int BYTES = (int) LAYOUT.byteSize();

    public static final long FLAGS = offset("flags");
    public static final long GSO_TYPE = offset("gso_type");
    public static final long HDR_LEN = offset("hdr_len");
    public static final long GSO_SIZE = offset("gso_size");
    public static final long CSUM_START = offset("csum_start");
    public static final long CSUM_OFFSET = offset("csum_offset");
    public static final long NUM_BUFFERS = offset("num_buffers");

    public static final int VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
    public static final int VIRTIO_NET_HDR_F_DATA_VALID = 2;
    public static final int VIRTIO_NET_HDR_F_RSC_INFO = 4;
    public static final int VIRTIO_NET_HDR_GSO_NONE = 0;
    public static final int VIRTIO_NET_HDR_GSO_TCPV4 = 1;
    public static final int VIRTIO_NET_HDR_GSO_UDP = 3;
    public static final int VIRTIO_NET_HDR_GSO_TCPV6 = 4;
    public static final int VIRTIO_NET_HDR_GSO_ECN = 0x80;

    /** The Ethernet header: destination, source, EtherType. */
    public static final int MIN_FRAME_BYTES = 14;
    /** The Ethernet header, one VLAN tag and the largest IP packet, as a segmentation offload may carry. */
    public static final int MAX_FRAME_BYTES = 14 + 4 + 65535;

    private static long offset(String member) {
        return LAYOUT.byteOffset(PathElement.groupElement(member));
    }

    public static int flags(MemorySegment packet) {
        return packet.get(ValueLayout.JAVA_BYTE, FLAGS) & 0xff;
    }

    public static int gsoType(MemorySegment packet) {
        return packet.get(ValueLayout.JAVA_BYTE, GSO_TYPE) & 0xff;
    }

    public static int hdrLen(MemorySegment packet) {
        return packet.get(LE16, HDR_LEN) & 0xffff;
    }

    public static int gsoSize(MemorySegment packet) {
        return packet.get(LE16, GSO_SIZE) & 0xffff;
    }

    public static int csumStart(MemorySegment packet) {
        return packet.get(LE16, CSUM_START) & 0xffff;
    }

    public static int csumOffset(MemorySegment packet) {
        return packet.get(LE16, CSUM_OFFSET) & 0xffff;
    }

    public static int numBuffers(MemorySegment packet) {
        return packet.get(LE16, NUM_BUFFERS) & 0xffff;
    }

    public static void setNumBuffers(MemorySegment packet, int count) {
        packet.set(LE16, NUM_BUFFERS, (short) count);
    }

    /** Writes the header of a frame that needs nothing of its receiver: no offload, one buffer. */
    public static void writePlain(MemorySegment packet) {
        packet.asSlice(0, NUM_BUFFERS).fill((byte) 0);
        setNumBuffers(packet, 1);
    }

    /** Refuses a buffer too small for {@link NetBackend#receive}. */
    static void checkReceiveBuffer(MemorySegment buffer) {
        if (buffer.byteSize() < BYTES + MAX_FRAME_BYTES) {
            throw new IllegalArgumentException("a receive buffer needs " + (BYTES + MAX_FRAME_BYTES) + " bytes, not " + buffer.byteSize());
        }
    }

    /**
     * Whether a frame from the guest of {@code frameBytes} behind {@code header} is one a backend
     * honouring {@code offloads} may pass on: its length between {@link #MIN_FRAME_BYTES} and {@link
     * #MAX_FRAME_BYTES}, no flag a driver must not set, a checksum request inside the frame, and a
     * segmentation type that is known, offered and consistent.
     */
    public static boolean acceptableFromGuest(MemorySegment header, long frameBytes, Set<NetOffload> offloads) {
        if (frameBytes < MIN_FRAME_BYTES || frameBytes > MAX_FRAME_BYTES) {
            return false;
        }
        int flags = flags(header);
        boolean needsChecksum = flags == VIRTIO_NET_HDR_F_NEEDS_CSUM;
        if (flags != 0 && !needsChecksum) {
            return false; // DATA_VALID and RSC_INFO are the device's to set, never the driver's
        }
        if (needsChecksum && (!offloads.contains(NetOffload.CHECKSUM) || csumStart(header) + csumOffset(header) + 2 > frameBytes)) {
            return false;
        }
        int gsoType = gsoType(header);
        if (gsoType == VIRTIO_NET_HDR_GSO_NONE) {
            return true;
        }
        return segmentationAllowed(gsoType, offloads) && needsChecksum && gsoSize(header) > 0 && hdrLen(header) <= frameBytes;
    }

    /** The bytes of the frame in a packet gathered from {@code packet[0, count)}, {@code packet[0]} being exactly its header. */
    static long frameBytes(MemorySegment[] packet, int count) {
        if (packet[0].byteSize() != BYTES) {
            throw new IllegalArgumentException("a packet's first part is its " + BYTES + "-byte header, not " + packet[0].byteSize() + " bytes");
        }
        long bytes = 0;
        for (int i = 1; i < count; i++) {
            bytes += packet[i].byteSize();
        }
        return bytes;
    }

    /** Whether {@code gsoType} is none, or a known segmentation type that {@code offloads} has (ECN too, when flagged). */
    static boolean segmentationAllowed(int gsoType, Set<NetOffload> offloads) {
        if (gsoType == VIRTIO_NET_HDR_GSO_NONE) {
            return true;
        }
        NetOffload segmentation = switch (gsoType & ~VIRTIO_NET_HDR_GSO_ECN) {
            case VIRTIO_NET_HDR_GSO_TCPV4 -> NetOffload.TSO4;
            case VIRTIO_NET_HDR_GSO_TCPV6 -> NetOffload.TSO6;
            case VIRTIO_NET_HDR_GSO_UDP -> NetOffload.UFO;
            default -> null;
        };
        boolean ecnAllowed = (gsoType & VIRTIO_NET_HDR_GSO_ECN) == 0
                || (segmentation != NetOffload.UFO && offloads.contains(NetOffload.TSO_ECN));
        return segmentation != null && offloads.contains(segmentation) && ecnAllowed;
    }
}
