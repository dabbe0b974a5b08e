package dev.panamax.virtio.net;

/**
 * Work a frame may leave to the other side, as virtio-net negotiates it: for frames from the guest,
 * the device features ({@code VIRTIO_NET_F_CSUM}, {@code HOST_TSO4}...); for frames to the guest, the
 * driver's ({@code GUEST_CSUM}, {@code GUEST_TSO4}...). A backend offers those it can honour in both
 * directions; every one but {@link #CHECKSUM} needs {@link #CHECKSUM} too.
 */
public enum NetOffload {
    /** A partial checksum the receiver completes ({@code VIRTIO_NET_HDR_F_NEEDS_CSUM}). */
    CHECKSUM,
    /** TCP segmentation over IPv4 ({@code VIRTIO_NET_HDR_GSO_TCPV4}). */
    TSO4,
    /** TCP segmentation over IPv6 ({@code VIRTIO_NET_HDR_GSO_TCPV6}). */
    TSO6,
    /** TCP segmentation of segments with ECN's CWR flag ({@code VIRTIO_NET_HDR_GSO_ECN}). */
    TSO_ECN,
    /** UDP fragmentation ({@code VIRTIO_NET_HDR_GSO_UDP}). */
    UFO
}
