package dev.panamax.virtio.net;

import static dev.panamax.virtio.net.VirtioNetHeader.VIRTIO_NET_HDR_F_DATA_VALID;
import static dev.panamax.virtio.net.VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM;
import static dev.panamax.virtio.net.VirtioNetHeader.VIRTIO_NET_HDR_GSO_ECN;
import static dev.panamax.virtio.net.VirtioNetHeader.VIRTIO_NET_HDR_GSO_TCPV4;
import static dev.panamax.virtio.net.VirtioNetHeader.VIRTIO_NET_HDR_GSO_UDP;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.testing.CHeaders;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VirtioNetHeaderTest {
    private static final Set<NetOffload> ALL = EnumSet.allOf(NetOffload.class);
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Test
    void layoutAndConstantsMatchLinuxVirtioNetH(@TempDir Path dir) throws Exception {
        Map<String, Long> expected = new LinkedHashMap<>();
        CHeaders.addStruct(expected, VirtioNetHeader.LAYOUT);
        for (Field field : VirtioNetHeader.class.getFields()) {
            if (Modifier.isStatic(field.getModifiers()) && field.getName().startsWith("VIRTIO_NET_")) {
                expected.put("(long long)" + field.getName(), (long) field.getInt(null));
            }
        }
        assertThat(expected).hasSizeGreaterThan(15);
        assertThat(VirtioNetHeader.BYTES).isEqualTo(12);
        assertThat(CHeaders.mismatches(dir, List.of("linux/virtio_net.h"), expected)).isEmpty();
    }

    @Test
    void aPlainHeaderAsksNothingAndCountsOneBuffer() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment packet = arena.allocate(VirtioNetHeader.BYTES + 14);
            packet.fill((byte) 0x5a);
            VirtioNetHeader.writePlain(packet);
            assertThat(packet.asSlice(0, 10).toArray(ValueLayout.JAVA_BYTE)).containsOnly(0);
            assertThat(VirtioNetHeader.numBuffers(packet)).isEqualTo(1);
            assertThat(packet.get(ValueLayout.JAVA_BYTE, 12)).as("the frame is untouched").isEqualTo((byte) 0x5a);
        }
    }

    @Test
    void framesOfAllowedLengthsWithPlainHeadersPass() {
        try (Arena arena = Arena.ofConfined()) {
            assertThat(acceptable(arena, 14, 0, 0, Set.of())).isTrue();
            assertThat(acceptable(arena, VirtioNetHeader.MAX_FRAME_BYTES, 0, 0, Set.of())).isTrue();
            assertThat(acceptable(arena, 13, 0, 0, ALL)).as("shorter than an Ethernet header").isFalse();
            assertThat(acceptable(arena, VirtioNetHeader.MAX_FRAME_BYTES + 1, 0, 0, ALL)).as("longer than any").isFalse();
        }
    }

    @Test
    void checksumRequestsNeedTheOffloadAndMustLieInsideTheFrame() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment packet = headerOnly(arena, 100, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0);
            setLe16(packet, VirtioNetHeader.CSUM_START, 34);
            setLe16(packet, VirtioNetHeader.CSUM_OFFSET, 6);
            assertThat(acceptableFromGuest(packet, EnumSet.of(NetOffload.CHECKSUM))).isTrue();
            assertThat(acceptableFromGuest(packet, Set.of())).as("not offered").isFalse();
            setLe16(packet, VirtioNetHeader.CSUM_START, 97);
            assertThat(acceptableFromGuest(packet, ALL)).as("checksum field past the end").isFalse();
            assertThat(acceptable(arena, 100, VIRTIO_NET_HDR_F_DATA_VALID, 0, ALL)).as("a flag only the device sets").isFalse();
            assertThat(acceptable(arena, 100, 0x80, 0, ALL)).as("an unknown flag").isFalse();
        }
    }

    @Test
    void segmentationNeedsItsOffloadAChecksumRequestAndASegmentSize() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment tso = headerOnly(arena, 3000, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4);
            setLe16(tso, VirtioNetHeader.CSUM_START, 34);
            setLe16(tso, VirtioNetHeader.CSUM_OFFSET, 16);
            setLe16(tso, VirtioNetHeader.HDR_LEN, 54);
            setLe16(tso, VirtioNetHeader.GSO_SIZE, 1448);
            assertThat(acceptableFromGuest(tso, EnumSet.of(NetOffload.CHECKSUM, NetOffload.TSO4))).isTrue();
            assertThat(acceptableFromGuest(tso, EnumSet.of(NetOffload.CHECKSUM, NetOffload.TSO6))).isFalse();

            tso.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.GSO_TYPE, (byte) (VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN));
            assertThat(acceptableFromGuest(tso, EnumSet.of(NetOffload.CHECKSUM, NetOffload.TSO4))).isFalse();
            assertThat(acceptableFromGuest(tso, ALL)).isTrue();
            tso.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.GSO_TYPE, (byte) (VIRTIO_NET_HDR_GSO_UDP | VIRTIO_NET_HDR_GSO_ECN));
            assertThat(acceptableFromGuest(tso, ALL)).as("ECN belongs to TCP").isFalse();
            tso.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.GSO_TYPE, (byte) 5);
            assertThat(acceptableFromGuest(tso, ALL)).as("UDP_L4, not offered by any backend").isFalse();

            tso.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.GSO_TYPE, (byte) VIRTIO_NET_HDR_GSO_TCPV4);
            setLe16(tso, VirtioNetHeader.GSO_SIZE, 0);
            assertThat(acceptableFromGuest(tso, ALL)).as("no segment size").isFalse();
            setLe16(tso, VirtioNetHeader.GSO_SIZE, 1448);
            setLe16(tso, VirtioNetHeader.HDR_LEN, 3001);
            assertThat(acceptableFromGuest(tso, ALL)).as("headers longer than the frame").isFalse();
            setLe16(tso, VirtioNetHeader.HDR_LEN, 54);
            tso.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.FLAGS, (byte) 0);
            assertThat(acceptableFromGuest(tso, ALL)).as("segments without a checksum request").isFalse();
        }
    }

    private static boolean acceptable(Arena arena, int frameBytes, int flags, int gsoType, Set<NetOffload> offloads) {
        return acceptableFromGuest(headerOnly(arena, frameBytes, flags, gsoType), offloads);
    }

    /** {@code packet} is a header and a frame, as one segment. */
    private static boolean acceptableFromGuest(MemorySegment packet, Set<NetOffload> offloads) {
        return VirtioNetHeader.acceptableFromGuest(packet.asSlice(0, VirtioNetHeader.BYTES), packet.byteSize() - VirtioNetHeader.BYTES, offloads);
    }

    private static MemorySegment headerOnly(Arena arena, int frameBytes, int flags, int gsoType) {
        MemorySegment packet = arena.allocate(VirtioNetHeader.BYTES + frameBytes);
        packet.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.FLAGS, (byte) flags);
        packet.set(ValueLayout.JAVA_BYTE, VirtioNetHeader.GSO_TYPE, (byte) gsoType);
        return packet;
    }

    private static void setLe16(MemorySegment packet, long offset, int value) {
        packet.set(LE16, offset, (short) value);
    }
}
