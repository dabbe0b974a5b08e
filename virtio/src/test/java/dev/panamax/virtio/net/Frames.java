package dev.panamax.virtio.net;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/** Ethernet frames for tests: built from their fields, and their fields read back. */
final class Frames {
    private Frames() {}

    static final int ETHERTYPE_IPV4 = 0x0800;
    static final int ETHERTYPE_ARP = 0x0806;
    static final int ETHERNET_BYTES = 14;
    static final int IPV4_BYTES = 20;
    static final int PROTOCOL_ICMP = 1;
    static final int PROTOCOL_UDP = 17;
    static final byte[] BROADCAST = {-1, -1, -1, -1, -1, -1};

    /** The header (all zero but for {@code flags}, checksum start and offset) and {@code frame}, in native memory. */
    static MemorySegment packet(Arena arena, byte[] frame, int flags, int csumStart, int csumOffset) {
        MemorySegment packet = arena.allocate(VirtioNetHeader.BYTES + frame.length);
        packet.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.FLAGS, (byte) flags);
        ByteBuffer header = packet.asByteBuffer().order(java.nio.ByteOrder.LITTLE_ENDIAN);
        header.putShort((int) VirtioNetHeader.CSUM_START, (short) csumStart);
        header.putShort((int) VirtioNetHeader.CSUM_OFFSET, (short) csumOffset);
        MemorySegment.copy(frame, 0, packet, ValueLayout.JAVA_BYTE, VirtioNetHeader.BYTES, frame.length);
        return packet;
    }

    /** Sends a packet held in one segment as the device does: its header and its frame as separate parts. */
    static boolean send(NetBackend backend, MemorySegment packet) {
        return backend.send(new MemorySegment[] {packet.asSlice(0, VirtioNetHeader.BYTES), packet.asSlice(VirtioNetHeader.BYTES)}, 2);
    }

    static MemorySegment packet(Arena arena, byte[] frame) {
        return packet(arena, frame, 0, 0, 0);
    }

    /** The frame behind the header of a received packet of {@code length} bytes. */
    static byte[] frameOf(MemorySegment buffer, int length) {
        return buffer.asSlice(VirtioNetHeader.BYTES, length - VirtioNetHeader.BYTES).toArray(ValueLayout.JAVA_BYTE);
    }

    static byte[] ethernet(byte[] destination, byte[] source, int etherType, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(ETHERNET_BYTES + payload.length);
        b.put(destination).put(source).putShort((short) etherType).put(payload);
        return b.array();
    }

    static byte[] arpRequest(byte[] senderMac, Inet4Address senderIp, Inet4Address targetIp) {
        ByteBuffer arp = ByteBuffer.allocate(28);
        arp.putShort((short) 1).putShort((short) ETHERTYPE_IPV4).put((byte) 6).put((byte) 4).putShort((short) 1)
                .put(senderMac).put(senderIp.getAddress()).put(new byte[6]).put(targetIp.getAddress());
        return ethernet(BROADCAST, senderMac, ETHERTYPE_ARP, arp.array());
    }

    static byte[] ipv4(Inet4Address source, Inet4Address destination, int protocol, byte[] payload) {
        ByteBuffer ip = ByteBuffer.allocate(IPV4_BYTES + payload.length);
        ip.put((byte) 0x45).put((byte) 0).putShort((short) (IPV4_BYTES + payload.length)).putShort((short) 0x1234)
                .putShort((short) 0x4000).put((byte) 64).put((byte) protocol).putShort((short) 0)
                .put(source.getAddress()).put(destination.getAddress()).put(payload);
        byte[] bytes = ip.array();
        int checksum = checksum(bytes, 0, IPV4_BYTES, 0);
        bytes[10] = (byte) (checksum >> 8);
        bytes[11] = (byte) checksum;
        return bytes;
    }

    /** An ICMP echo request; its checksum is right unless {@code checksum} overrides it. */
    static byte[] icmpEcho(int id, int sequence, byte[] data, Integer checksum) {
        ByteBuffer icmp = ByteBuffer.allocate(8 + data.length);
        icmp.put((byte) 8).put((byte) 0).putShort((short) 0).putShort((short) id).putShort((short) sequence).put(data);
        byte[] bytes = icmp.array();
        int sum = checksum != null ? checksum : checksum(bytes, 0, bytes.length, 0);
        bytes[2] = (byte) (sum >> 8);
        bytes[3] = (byte) sum;
        return bytes;
    }

    static byte[] udp(int sourcePort, int destinationPort, byte[] data) {
        ByteBuffer udp = ByteBuffer.allocate(8 + data.length);
        udp.putShort((short) sourcePort).putShort((short) destinationPort).putShort((short) (8 + data.length)).putShort((short) 0)
                .put(data);
        return udp.array(); // checksum 0: none, allowed for UDP over IPv4
    }

    /** A DHCPDISCOVER from {@code mac}, broadcast from 0.0.0.0:68 to 255.255.255.255:67. */
    static byte[] dhcpDiscover(byte[] mac, int xid) {
        ByteBuffer bootp = ByteBuffer.allocate(240 + 4);
        bootp.put((byte) 1).put((byte) 1).put((byte) 6).put((byte) 0).putInt(xid).putShort((short) 0).putShort((short) 0x8000);
        bootp.position(28);
        bootp.put(mac);
        bootp.position(236);
        bootp.putInt(0x63825363); // the magic cookie
        bootp.put((byte) 53).put((byte) 1).put((byte) 1); // DHCP message type: DISCOVER
        bootp.put((byte) 255);
        byte[] ip = ipv4(address("0.0.0.0"), address("255.255.255.255"), PROTOCOL_UDP, udp(68, 67, bootp.array()));
        return ethernet(BROADCAST, mac, ETHERTYPE_IPV4, ip);
    }

    /** The Internet checksum (RFC 1071) of {@code length} bytes from {@code offset}, starting from {@code initial}. */
    static int checksum(byte[] bytes, int offset, int length, long initial) {
        long sum = initial;
        for (int i = 0; i < length; i += 2) {
            int high = bytes[offset + i] & 0xff;
            int low = i + 1 < length ? bytes[offset + i + 1] & 0xff : 0;
            sum += (high << 8) | low;
        }
        while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (int) (~sum & 0xffff);
    }

    /** Whether the UDP checksum of an IPv4 frame is right, with its pseudo-header. */
    static boolean udpChecksumValid(byte[] frame) {
        int ip = ETHERNET_BYTES;
        int udpLength = u16(frame, ip + IPV4_BYTES + 4);
        long pseudo = u16(frame, ip + 12) + u16(frame, ip + 14) + u16(frame, ip + 16) + u16(frame, ip + 18) + PROTOCOL_UDP + udpLength;
        return checksum(frame, ip + IPV4_BYTES, udpLength, pseudo) == 0;
    }

    static int etherType(byte[] frame) {
        return u16(frame, 12);
    }

    static int ipProtocol(byte[] frame) {
        return frame[ETHERNET_BYTES + 9] & 0xff;
    }

    static int u16(byte[] bytes, int offset) {
        return (bytes[offset] & 0xff) << 8 | (bytes[offset + 1] & 0xff);
    }

    static byte[] slice(byte[] bytes, int offset, int length) {
        return Arrays.copyOfRange(bytes, offset, offset + length);
    }

    static Inet4Address address(String dotted) {
        try {
            return (Inet4Address) InetAddress.getByName(dotted);
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException(dotted, e);
        }
    }

    static Inet4Address address(byte[] bytes, int offset) {
        try {
            return (Inet4Address) InetAddress.getByAddress(slice(bytes, offset, 4));
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException(e);
        }
    }
}
