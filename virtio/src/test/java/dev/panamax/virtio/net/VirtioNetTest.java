package dev.panamax.virtio.net;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.vm.GuestMemory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class VirtioNetTest {
    static final int QUEUE_SIZE = 64;
    static final int RX = VirtioNet.RX;
    static final int TX = VirtioNet.TX;
    static final int HEADER = VirtioNetHeader.BYTES;
    static final MacAddress MAC = MacAddress.parse("52:54:00:12:34:56");
    static final long BASE_FEATURES = 1L << VirtioDevice.VIRTIO_F_VERSION_1 | 1L << VirtioNet.VIRTIO_NET_F_MAC
            | 1L << VirtioNet.VIRTIO_NET_F_STATUS;
    static final long MERGEABLE = BASE_FEATURES | 1L << VirtioNet.VIRTIO_NET_F_MRG_RXBUF;

    GuestMemory memory;
    FakeBackend backend;
    VirtioNet net;
    VirtioTestDriver driver;

    @BeforeEach
    void setUp() {
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(4 << 20));
    }

    @AfterEach
    void tearDown() {
        if (net != null) {
            net.close();
        }
        memory.close();
    }

    void create(Set<NetOffload> offloads) {
        backend = new FakeBackend(offloads);
        net = new VirtioNet("net0", MAC, backend, QUEUE_SIZE);
        driver = new VirtioTestDriver(net, memory);
    }

    void start(Set<NetOffload> offloads, long features) {
        create(offloads);
        driver.start(features, QUEUE_SIZE);
    }

    /** A frame of {@code length} bytes: Ethernet addresses, an EtherType, then counting bytes. */
    static byte[] frame(int length, int seed) {
        byte[] frame = new byte[length];
        for (int i = 0; i < length; i++) frame[i] = (byte) (seed + i);
        if (length >= 14) {
            frame[12] = 0x08;
            frame[13] = 0x00;
        }
        return frame;
    }

    /** A header with {@code flags}, {@code gsoType} and {@code numBuffers}, the other fields sensible for a TCP frame. */
    static byte[] header(int flags, int gsoType, int numBuffers) {
        return ByteBuffer.allocate(HEADER).order(ByteOrder.LITTLE_ENDIAN).put((byte) flags).put((byte) gsoType)
                .putShort((short) 54).putShort((short) (gsoType == 0 ? 0 : 1448)).putShort((short) 34).putShort((short) 16)
                .putShort((short) numBuffers).array();
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    int numBuffers(long address) {
        return Short.toUnsignedInt(memory.readShort(address + VirtioNetHeader.NUM_BUFFERS));
    }

    /** Sends {@code header} and {@code frame} as the guest does: two descriptors. */
    Used transmit(byte[] header, byte[] frame) {
        driver.submit(TX, readable(driver.allocate(header), header.length), readable(driver.allocate(frame), frame.length));
        return driver.awaitUsed(TX);
    }

    byte[] awaitSent() throws InterruptedException {
        byte[] packet = backend.sent.poll(VirtioTestDriver.TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(packet).as("a frame at the backend").isNotNull();
        return packet;
    }

    @Test
    void theConfigurationSpaceHasTheMacTheLinkUpAndOneQueuePair() {
        create(Set.of());
        assertThat(net.deviceType()).isEqualTo(1);
        assertThat(net.configSize()).isEqualTo(10);
        byte[] mac = new byte[6];
        for (int i = 0; i < 6; i++) mac[i] = (byte) net.readConfig(VirtioNet.CONFIG_MAC + i, 1);
        assertThat(mac).isEqualTo(MAC.bytes());
        assertThat(net.readConfig(VirtioNet.CONFIG_STATUS, 2)).isEqualTo(VirtioNet.VIRTIO_NET_S_LINK_UP);
        assertThat(net.readConfig(VirtioNet.CONFIG_MAX_VIRTQUEUE_PAIRS, 2)).isEqualTo(1);
        net.writeConfig(VirtioNet.CONFIG_MAC, 1, 0xff);
        assertThat(net.readConfig(VirtioNet.CONFIG_MAC, 1)).isEqualTo(0x52);
    }

    @Test
    void offloadsAreOfferedOnlyWhenTheBackendHonoursThemAndWhatTheyNeedToo() {
        long none = VirtioNet.features(Set.of());
        assertThat(none & 1L << VirtioNet.VIRTIO_NET_F_MRG_RXBUF).isNotZero();
        assertThat(none & (1L << VirtioNet.VIRTIO_NET_F_CSUM | 1L << VirtioNet.VIRTIO_NET_F_GUEST_CSUM)).isZero();

        long tso4 = VirtioNet.features(EnumSet.of(NetOffload.CHECKSUM, NetOffload.TSO4));
        assertThat(tso4 & 1L << VirtioNet.VIRTIO_NET_F_CSUM).isNotZero();
        assertThat(tso4 & 1L << VirtioNet.VIRTIO_NET_F_GUEST_CSUM).isNotZero();
        assertThat(tso4 & 1L << VirtioNet.VIRTIO_NET_F_HOST_TSO4).isNotZero();
        assertThat(tso4 & 1L << VirtioNet.VIRTIO_NET_F_GUEST_TSO4).isNotZero();
        assertThat(tso4 & (1L << VirtioNet.VIRTIO_NET_F_HOST_TSO6 | 1L << VirtioNet.VIRTIO_NET_F_HOST_UFO)).isZero();

        // Segmentation without checksum offload, and ECN without segmentation, are not offered.
        assertThat(VirtioNet.features(EnumSet.of(NetOffload.TSO4, NetOffload.TSO6))).isEqualTo(none);
        assertThat(VirtioNet.features(EnumSet.of(NetOffload.CHECKSUM, NetOffload.TSO_ECN)))
                .isEqualTo(VirtioNet.features(EnumSet.of(NetOffload.CHECKSUM)));
    }

    @Test
    void theBackendIsToldTheReceiveOffloadsTheDriverAccepted() {
        start(EnumSet.of(NetOffload.CHECKSUM, NetOffload.TSO4, NetOffload.TSO6),
                MERGEABLE | 1L << VirtioNet.VIRTIO_NET_F_GUEST_CSUM | 1L << VirtioNet.VIRTIO_NET_F_GUEST_TSO4
                        | 1L << VirtioNet.VIRTIO_NET_F_CSUM);
        VirtioTestDriver.await(() -> backend.receiveOffloads != null, "the receive offloads");
        assertThat(backend.receiveOffloads).containsExactlyInAnyOrder(NetOffload.CHECKSUM, NetOffload.TSO4);
    }

    @Test
    void aFrameFromTheGuestReachesTheBackendWithItsHeader() throws InterruptedException {
        start(Set.of(), BASE_FEATURES);
        byte[] frame = frame(60, 1);
        Used used = transmit(header(0, 0, 0), frame);
        assertThat(used.length()).isZero();
        assertThat(awaitSent()).isEqualTo(concat(header(0, 0, 0), frame));
        driver.interrupts().awaitQueue(TX, 1, VirtioTestDriver.TIMEOUT);
        assertThat(net.dropped().fromGuest()).isZero();
    }

    @Test
    void theCountsFollowTheFramesEachWay() throws InterruptedException {
        start(Set.of(), BASE_FEATURES);
        transmit(header(0, 0, 0), frame(60, 1));
        transmit(header(0, 0, 0), frame(1000, 2));
        transmit(header(0, 0, 0), frame(13, 3)); // too short: dropped, not counted as sent
        long buffer = driver.allocate(HEADER + 1514);
        driver.submit(RX, writable(buffer, HEADER + 1514));
        backend.offer(concat(header(0, 0, 1), frame(700, 4)));
        driver.awaitUsed(RX);
        NetCounts c = net.counts();
        assertThat(List.of(c.transmittedFrames(), c.transmittedBytes(), c.receivedFrames(), c.receivedBytes(), net.dropped().fromGuest()))
                .as("frames and bytes sent, frames and bytes received, frames from the guest dropped")
                .containsExactly(2L, 1060L, 1L, 700L, 1L);
    }

    @Test
    void aFrameInBuffersCutAnywhereReachesTheBackendWhole() throws InterruptedException {
        start(Set.of(), BASE_FEATURES);
        byte[] packet = concat(header(0, 0, 0), frame(3000, 9));
        // The header cut in two, the second piece running into the frame; the frame in three more pieces.
        int[] cuts = {0, 5, 20, 1500, 1501, packet.length};
        VirtioTestDriver.Buffer[] buffers = new VirtioTestDriver.Buffer[cuts.length - 1];
        for (int i = 0; i < buffers.length; i++) {
            byte[] piece = Arrays.copyOfRange(packet, cuts[i], cuts[i + 1]);
            buffers[i] = readable(driver.allocate(piece), piece.length);
        }
        driver.submit(TX, buffers);
        assertThat(driver.awaitUsed(TX).length()).isZero();
        assertThat(awaitSent()).isEqualTo(packet);
        assertThat(net.dropped().fromGuest()).isZero();
    }

    @Test
    void checksumAndSegmentationOffloadsPassOnlyWhenNegotiated() throws InterruptedException {
        Set<NetOffload> all = EnumSet.of(NetOffload.CHECKSUM, NetOffload.TSO4);
        start(all, BASE_FEATURES | 1L << VirtioNet.VIRTIO_NET_F_CSUM | 1L << VirtioNet.VIRTIO_NET_F_HOST_TSO4);
        byte[] big = frame(3000, 2);
        byte[] tso = header(VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM, VirtioNetHeader.VIRTIO_NET_HDR_GSO_TCPV4, 0);
        transmit(tso, big);
        byte[] sent = awaitSent();
        assertThat(sent).isEqualTo(concat(tso, big));
        assertThat(VirtioNetHeader.gsoType(java.lang.foreign.MemorySegment.ofArray(sent))).isEqualTo(VirtioNetHeader.VIRTIO_NET_HDR_GSO_TCPV4);

        // TSO6 is neither offered nor negotiated: dropped and counted; what follows goes on.
        transmit(header(VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM, VirtioNetHeader.VIRTIO_NET_HDR_GSO_TCPV6, 0), big);
        assertThat(net.dropped().fromGuest()).isEqualTo(1);
        byte[] plain = frame(100, 3);
        transmit(header(0, 0, 0), plain);
        assertThat(awaitSent()).isEqualTo(concat(header(0, 0, 0), plain));
    }

    @Test
    void aChecksumRequestIsDroppedWhenTheDriverDidNotNegotiateChecksumOffload() throws InterruptedException {
        start(EnumSet.of(NetOffload.CHECKSUM), BASE_FEATURES); // offered, not accepted
        transmit(header(VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0), frame(100, 4));
        assertThat(net.dropped().fromGuest()).isEqualTo(1);
        assertThat(backend.sent).isEmpty();
        byte[] plain = frame(100, 5);
        transmit(header(0, 0, 0), plain);
        assertThat(awaitSent()).isEqualTo(concat(header(0, 0, 0), plain));
    }

    @Test
    void truncatedAndOversizedFramesFromTheGuestAreDroppedAndCounted() throws InterruptedException {
        start(Set.of(), BASE_FEATURES);
        byte[] headerOnly = header(0, 0, 0);
        driver.submit(TX, readable(driver.allocate(headerOnly), headerOnly.length));
        driver.awaitUsed(TX);
        transmit(header(0, 0, 0), frame(13, 6)); // shorter than an Ethernet header
        byte[] tooShortForAHeader = new byte[8];
        driver.submit(TX, readable(driver.allocate(tooShortForAHeader), 8));
        driver.awaitUsed(TX);
        transmit(header(0, 0, 0), frame(VirtioNetHeader.MAX_FRAME_BYTES + 1, 7));
        assertThat(net.dropped().fromGuest()).isEqualTo(4);
        assertThat(backend.sent).isEmpty();

        byte[] longest = frame(VirtioNetHeader.MAX_FRAME_BYTES, 8);
        transmit(header(0, 0, 0), longest);
        assertThat(awaitSent()).hasSize(HEADER + longest.length);
        assertThat(net.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();
    }

    @Test
    void aFrameTheBackendRefusesForNowIsSentOnceItTakesFramesAgain() throws InterruptedException {
        start(Set.of(), BASE_FEATURES);
        backend.refusals.set(3);
        byte[] first = frame(80, 9);
        byte[] second = frame(90, 10);
        transmit(header(0, 0, 0), first);
        transmit(header(0, 0, 0), second);
        assertThat(awaitSent()).isEqualTo(concat(header(0, 0, 0), first));
        assertThat(awaitSent()).isEqualTo(concat(header(0, 0, 0), second));
        assertThat(backend.sent).isEmpty();
        assertThat(backend.refusals.get()).isZero();
    }

    @Test
    void withoutMergeableBuffersAFrameFillsOneChainWithOneBuffer() throws InterruptedException {
        start(Set.of(), BASE_FEATURES);
        long buffer = driver.allocate(HEADER + 1514);
        int head = driver.submit(RX, writable(buffer, HEADER + 1514));
        byte[] packet = concat(header(0, 0, 1), frame(1514, 11));
        backend.offer(packet);
        Used used = driver.awaitUsed(RX);
        assertThat(used).isEqualTo(new Used(head, packet.length));
        assertThat(driver.read(buffer, packet.length)).isEqualTo(packet);
        assertThat(numBuffers(buffer)).isEqualTo(1);
        driver.interrupts().awaitQueue(RX, 1, VirtioTestDriver.TIMEOUT);
    }

    @Test
    void withoutMergeableBuffersAFrameLargerThanTheChainIsDroppedAndCounted() {
        start(Set.of(), BASE_FEATURES);
        int small = driver.submit(RX, writable(driver.allocate(HEADER + 100), HEADER + 100));
        backend.offer(concat(header(0, 0, 1), frame(200, 12)));
        assertThat(driver.awaitUsed(RX)).isEqualTo(new Used(small, 0));
        assertThat(net.dropped().toGuest()).isEqualTo(1);

        long buffer = driver.allocate(HEADER + 200);
        driver.submit(RX, writable(buffer, HEADER + 200));
        byte[] packet = concat(header(0, 0, 1), frame(200, 13));
        backend.offer(packet);
        assertThat(driver.awaitUsed(RX).length()).isEqualTo(packet.length);
        assertThat(driver.read(buffer, packet.length)).isEqualTo(packet);
    }

    @Test
    void withMergeableBuffersAFrameSpansChainsAndTheFirstHeaderCountsThem() {
        start(Set.of(), MERGEABLE);
        long[] buffers = new long[4];
        int[] heads = new int[4];
        for (int i = 0; i < 4; i++) {
            buffers[i] = driver.allocate(100);
            heads[i] = driver.submit(RX, writable(buffers[i], 100));
        }
        byte[] packet = concat(header(0, 0, 1), frame(250, 14));
        backend.offer(packet);
        List<Used> used = List.of(driver.awaitUsed(RX), driver.awaitUsed(RX), driver.awaitUsed(RX));
        assertThat(used).containsExactly(new Used(heads[0], 100), new Used(heads[1], 100), new Used(heads[2], 62));
        byte[] received = concat(concat(driver.read(buffers[0], 100), driver.read(buffers[1], 100)), driver.read(buffers[2], 62));
        assertThat(numBuffers(buffers[0])).isEqualTo(3);
        byte[] expected = packet.clone();
        expected[(int) VirtioNetHeader.NUM_BUFFERS] = 3;
        assertThat(received).isEqualTo(expected);

        // The fourth buffer takes the next frame whole.
        byte[] next = concat(header(0, 0, 1), frame(60, 15));
        backend.offer(next);
        assertThat(driver.awaitUsed(RX)).isEqualTo(new Used(heads[3], next.length));
        assertThat(numBuffers(buffers[3])).isEqualTo(1);
    }

    @Test
    void framesWaitInTheBackendUntilTheGuestAddsBuffersAndNoneIsLost() {
        start(Set.of(), MERGEABLE | 1L << VirtioDevice.VIRTIO_F_RING_EVENT_IDX);
        List<byte[]> packets = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            packets.add(concat(header(0, 0, 1), frame(300, 20 + i)));
            backend.offer(packets.get(i));
        }
        // The device takes one frame and holds it; the others stay in the backend.
        VirtioTestDriver.await(() -> backend.waiting.size() == 2, "the device to take one frame");
        int callsWhileWaiting = backend.receiveCalls.get();

        // Half a frame's worth of buffers: the device fills it and waits for more.
        long part = driver.allocate(200);
        int partHead = driver.submit(RX, writable(part, 200));
        long rest = driver.allocate(200);
        VirtioTestDriver.await(() -> driver.availEvent(RX) == 1, "the device to ask for a notification at the next buffer");
        assertThat(driver.usedIdx(RX)).isZero();
        // Waiting for buffers, the device asked the backend for nothing more than the frame it holds.
        assertThat(backend.receiveCalls.get()).isEqualTo(callsWhileWaiting);
        int restHead = driver.submit(RX, writable(rest, 200));
        assertThat(driver.awaitUsed(RX)).isEqualTo(new Used(partHead, 200));
        assertThat(driver.awaitUsed(RX)).isEqualTo(new Used(restHead, packets.get(0).length - 200));
        assertThat(numBuffers(part)).isEqualTo(2);

        for (int i = 1; i < 3; i++) {
            long buffer = driver.allocate(HEADER + 300);
            driver.submit(RX, writable(buffer, HEADER + 300));
            assertThat(driver.awaitUsed(RX).length()).isEqualTo(packets.get(i).length);
            assertThat(driver.read(buffer, packets.get(i).length)).isEqualTo(packets.get(i));
        }
        assertThat(net.dropped().toGuest()).isZero();
    }

    @Test
    void aFrameUsingAReceiveOffloadTheDriverRefusedIsDroppedAndCounted() {
        start(EnumSet.of(NetOffload.CHECKSUM, NetOffload.TSO4), MERGEABLE | 1L << VirtioNet.VIRTIO_NET_F_GUEST_CSUM);
        backend.offer(concat(header(VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM, VirtioNetHeader.VIRTIO_NET_HDR_GSO_TCPV4, 1),
                frame(3000, 30)));
        byte[] partial = concat(header(VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 1), frame(500, 31));
        backend.offer(partial);
        long buffer = driver.allocate(HEADER + 3000);
        driver.submit(RX, writable(buffer, HEADER + 3000));
        assertThat(driver.awaitUsed(RX).length()).isEqualTo(partial.length);
        assertThat(driver.read(buffer, partial.length)).isEqualTo(partial);
        assertThat(net.dropped().toGuest()).isEqualTo(1);
    }

    @Test
    void aReceiveBufferTooSmallForTheHeaderNeedsAReset() {
        start(Set.of(), MERGEABLE);
        driver.submit(RX, writable(driver.allocate(8), 8));
        backend.offer(concat(header(0, 0, 1), frame(60, 32)));
        assertThat(driver.awaitFailure()).contains("less than the 12-byte header");
    }

    @Test
    void aResetWhileFramesFlowStopsTheThreadsAndTheDeviceWorksAfterwards() throws InterruptedException {
        start(Set.of(), MERGEABLE);
        for (int i = 0; i < 50; i++) {
            backend.offer(concat(header(0, 0, 1), frame(100, i)));
        }
        for (int i = 0; i < 10; i++) {
            driver.submit(RX, writable(driver.allocate(HEADER + 100), HEADER + 100));
            driver.submit(TX, readable(driver.allocate(concat(header(0, 0, 0), frame(70, i))), HEADER + 70));
        }
        driver.reset();

        driver.start(MERGEABLE, QUEUE_SIZE);
        backend.sent.clear();
        byte[] marker = frame(77, 99);
        transmit(header(0, 0, 0), marker);
        assertThat(awaitSent()).isEqualTo(concat(header(0, 0, 0), marker));
        long buffer = driver.allocate(HEADER + 100);
        driver.submit(RX, writable(buffer, HEADER + 100));
        Used used = driver.awaitUsed(RX);
        assertThat(used.length()).isEqualTo(HEADER + 100);
        assertThat(numBuffers(buffer)).isEqualTo(1);
        assertThat(net.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();
        assertThat(net.dropped().toGuest()).isZero();
    }

    @Test
    void closingTheDeviceClosesTheBackend() {
        start(Set.of(), BASE_FEATURES);
        net.close();
        assertThat(backend.closed).isTrue();
        net = null;
    }

    /** After a live migration: one RARP frame from the guest's MAC to everyone, which teaches a bridge the guest's new port. */
    @Test
    void anAnnounceSendsOneRarpFrameFromTheGuestsAddress() throws InterruptedException {
        create(Set.of());
        net.announce();
        byte[] packet = backend.sent.poll(5, java.util.concurrent.TimeUnit.SECONDS);
        assertThat(packet).hasSize(NetBackend.HEADER_BYTES + 60);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(packet, NetBackend.HEADER_BYTES, 60).slice();
        assertThat(java.util.Arrays.copyOfRange(packet, 0, NetBackend.HEADER_BYTES)).as("a header asking for no offload").containsOnly(0);
        assertThat(java.util.Arrays.copyOfRange(packet, NetBackend.HEADER_BYTES, NetBackend.HEADER_BYTES + 6)).containsOnly(-1);
        assertThat(java.util.Arrays.copyOfRange(packet, NetBackend.HEADER_BYTES + 6, NetBackend.HEADER_BYTES + 12)).isEqualTo(MAC.bytes());
        assertThat(b.getShort(12)).as("EtherType RARP").isEqualTo((short) 0x8035);
        assertThat(b.getShort(20)).as("RARP reverse request").isEqualTo((short) 3);
        assertThat(java.util.Arrays.copyOfRange(packet, NetBackend.HEADER_BYTES + 22, NetBackend.HEADER_BYTES + 28)).isEqualTo(MAC.bytes());
        assertThat(java.util.Arrays.copyOfRange(packet, NetBackend.HEADER_BYTES + 32, NetBackend.HEADER_BYTES + 38)).isEqualTo(MAC.bytes());
        assertThat(backend.sent).isEmpty();
    }
}
