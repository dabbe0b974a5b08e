package dev.panamax.virtio.net;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.vm.GuestMemory;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The control queue and VIRTIO_NET_F_GUEST_ANNOUNCE: after a live migration the device asks the
 * guest to announce itself, and the guest acknowledges on the control queue, as Linux's driver does.
 */
class VirtioNetAnnounceTest {
    static final int QUEUE_SIZE = 64;
    static final int CTRL = VirtioNet.CTRL;
    static final MacAddress MAC = MacAddress.parse("52:54:00:12:34:56");
    static final long CONTROL = VirtioNetTest.MERGEABLE | 1L << VirtioNet.VIRTIO_NET_F_CTRL_VQ;
    static final long ANNOUNCING = CONTROL | 1L << VirtioNet.VIRTIO_NET_F_GUEST_ANNOUNCE;
    static final int VIRTQ_DESC_F_NEXT = 1;

    GuestMemory memory;
    FakeBackend backend;
    VirtioNet net;
    VirtioTestDriver driver;

    @BeforeEach
    void setUp() {
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(4 << 20));
        backend = new FakeBackend(Set.of());
        net = new VirtioNet("net0", MAC, backend, QUEUE_SIZE);
        driver = new VirtioTestDriver(net, memory);
    }

    @AfterEach
    void tearDown() {
        net.close();
        memory.close();
    }

    /** A command as Linux's virtnet_send_command lays it out: the header, its data if any, and the byte for the answer. */
    Used command(int commandClass, int command) {
        long header = driver.allocate(new byte[] {(byte) commandClass, (byte) command});
        driver.submit(CTRL, readable(header, 2), writable(ackByte(), 1));
        return driver.awaitUsed(CTRL);
    }

    long lastAck;

    /** A writable byte for the answer, 0xff until the device writes it. */
    long ackByte() {
        lastAck = driver.allocate(new byte[] {(byte) 0xff});
        return lastAck;
    }

    int ack() {
        return driver.read(lastAck, 1)[0] & 0xff;
    }

    void awaitRarp() throws InterruptedException {
        byte[] packet = backend.sent.poll(VirtioTestDriver.TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(packet).as("the RARP frame").isNotNull();
        assertThat(packet[NetBackend.HEADER_BYTES + 12]).isEqualTo((byte) 0x80);
        assertThat(packet[NetBackend.HEADER_BYTES + 13]).isEqualTo((byte) 0x35);
    }

    @Test
    void theControlQueueAndGuestAnnounceAreOfferedAndTheControlQueueIsTheThird() {
        assertThat(net.deviceFeatures() & 1L << VirtioNet.VIRTIO_NET_F_CTRL_VQ).isNotZero();
        assertThat(net.deviceFeatures() & 1L << VirtioNet.VIRTIO_NET_F_GUEST_ANNOUNCE).isNotZero();
        assertThat(net.deviceFeatures() & 1L << 22).as("no VIRTIO_NET_F_MQ: the control queue is queue 2").isZero();
        assertThat(net.queueCount()).isEqualTo(3);
        assertThat(CTRL).isEqualTo(2);
        assertThat(net.announcePending()).isFalse();
    }

    @Test
    void anAnnounceAsksTheGuestWithTheStatusBitAndAConfigurationInterruptAndItsAckClearsTheBit() throws InterruptedException {
        driver.start(ANNOUNCING, QUEUE_SIZE);
        net.announce();
        awaitRarp();
        assertThat(net.readConfig(VirtioNet.CONFIG_STATUS, 2)).isEqualTo(VirtioNet.VIRTIO_NET_S_LINK_UP | VirtioNet.VIRTIO_NET_S_ANNOUNCE);
        assertThat(net.announcePending()).isTrue();
        assertThat(driver.interrupts().configCount()).isEqualTo(1);

        Used used = command(VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE, VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE_ACK);
        assertThat(used.length()).as("the answer byte").isEqualTo(1);
        assertThat(ack()).isEqualTo(VirtioNet.VIRTIO_NET_OK);
        assertThat(net.readConfig(VirtioNet.CONFIG_STATUS, 2)).isEqualTo(VirtioNet.VIRTIO_NET_S_LINK_UP);
        assertThat(net.announcePending()).isFalse();
        assertThat(driver.interrupts().configCount()).as("clearing the bit tells the driver nothing").isEqualTo(1);
        driver.interrupts().awaitQueue(CTRL, 1, VirtioTestDriver.TIMEOUT);
        assertThat(net.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();
    }

    @Test
    void withoutGuestAnnounceAnAnnounceSendsOnlyTheRarpFrame() throws InterruptedException {
        driver.start(CONTROL, QUEUE_SIZE);
        net.announce();
        awaitRarp();
        assertThat(net.announcePending()).isFalse();
        assertThat(driver.interrupts().configCount()).isZero();
        assertThat(backend.sent).isEmpty();
    }

    @Test
    void guestAnnounceWithoutTheControlQueueItNeedsIsNotActedOn() throws InterruptedException {
        driver.start(VirtioNetTest.MERGEABLE | 1L << VirtioNet.VIRTIO_NET_F_GUEST_ANNOUNCE, QUEUE_SIZE);
        net.announce();
        awaitRarp();
        assertThat(net.announcePending()).isFalse();
        assertThat(driver.interrupts().configCount()).isZero();
    }

    @Test
    void beforeTheDriverRunsAnAnnounceSendsOnlyTheRarpFrame() throws InterruptedException {
        assertThat(driver.negotiate(ANNOUNCING)).isTrue();
        net.announce();
        awaitRarp();
        assertThat(net.announcePending()).isFalse();
        assertThat(driver.interrupts().configCount()).isZero();
    }

    @Test
    void aResetForgetsAPendingAnnouncement() {
        driver.start(ANNOUNCING, QUEUE_SIZE);
        net.announce();
        assertThat(net.announcePending()).isTrue();
        driver.reset();
        assertThat(net.announcePending()).isFalse();
        assertThat(net.linkUp()).isTrue();
    }

    @Test
    void otherClassesAndCommandsAreAnsweredWithAnError() {
        driver.start(ANNOUNCING, QUEUE_SIZE);
        net.announce();
        // RX mode (promiscuous), MAC table, VLAN, multiqueue, offloads: features this device does not offer.
        int[][] commands = {{0, 0}, {1, 1}, {2, 0}, {4, 0}, {5, 0}, {VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE, 1}, {255, 255}};
        for (int[] c : commands) {
            assertThat(command(c[0], c[1]).length()).isEqualTo(1);
            assertThat(ack()).as("class %d command %d", c[0], c[1]).isEqualTo(VirtioNet.VIRTIO_NET_ERR);
        }
        assertThat(net.announcePending()).as("no other command clears the bit").isTrue();
        assertThat(net.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();
    }

    @Test
    void anAckFromADriverThatDidNotAcceptGuestAnnounceIsAnError() {
        driver.start(CONTROL, QUEUE_SIZE);
        command(VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE, VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE_ACK);
        assertThat(ack()).isEqualTo(VirtioNet.VIRTIO_NET_ERR);
    }

    @Test
    void anAckWithNoAnnouncementPendingIsAnsweredOk() {
        driver.start(ANNOUNCING, QUEUE_SIZE);
        command(VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE, VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE_ACK);
        assertThat(ack()).isEqualTo(VirtioNet.VIRTIO_NET_OK);
    }

    @Test
    void aHeaderCutAcrossBuffersWithDataAndAnAnswerInALargerBufferIsServed() {
        driver.start(ANNOUNCING | 1L << VirtioDevice.VIRTIO_F_RING_INDIRECT_DESC, QUEUE_SIZE);
        net.announce();
        long answer = driver.allocate(new byte[] {(byte) 0xff, (byte) 0xee, (byte) 0xdd});
        driver.submitIndirect(CTRL, readable(driver.allocate(new byte[] {VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE}), 1),
                readable(driver.allocate(new byte[] {VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE_ACK, 7, 7}), 3), writable(answer, 3));
        assertThat(driver.awaitUsed(CTRL).length()).isEqualTo(1);
        assertThat(driver.read(answer, 3)).as("the answer in the first writable byte, nothing else written")
                .containsExactly(VirtioNet.VIRTIO_NET_OK, (byte) 0xee, (byte) 0xdd);
        assertThat(net.announcePending()).isFalse();
    }

    // ---- Hostile chains: the device needs a reset, and works again after it ----

    void assertNeedsResetThenWorks(Consumer<VirtioTestDriver> hostile, String reason) {
        driver.start(ANNOUNCING, QUEUE_SIZE);
        hostile.accept(driver);
        assertThat(driver.awaitFailure()).contains(reason);
        driver.reset();
        driver.start(ANNOUNCING, QUEUE_SIZE);
        net.announce();
        command(VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE, VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE_ACK);
        assertThat(ack()).isEqualTo(VirtioNet.VIRTIO_NET_OK);
        assertThat(net.announcePending()).isFalse();
    }

    @Test
    void aCommandWithNoByteForTheAnswerNeedsAReset() {
        assertNeedsResetThenWorks(d -> d.submit(CTRL, readable(d.allocate(new byte[] {3, 0}), 2)), "no writable byte for its answer");
    }

    @Test
    void aHeaderShorterThanTwoBytesNeedsAReset() {
        assertNeedsResetThenWorks(d -> d.submit(CTRL, readable(d.allocate(new byte[] {3}), 1), writable(d.allocate(1), 1)),
                "a header of 1 readable bytes, not 2");
    }

    @Test
    void aCommandOfOnlyWritableBytesNeedsAReset() {
        assertNeedsResetThenWorks(d -> d.submit(CTRL, writable(d.allocate(4), 4)), "a header of 0 readable bytes, not 2");
    }

    @Test
    void aHeaderAfterTheAnswerByteNeedsAReset() {
        assertNeedsResetThenWorks(d -> d.submit(CTRL, writable(d.allocate(1), 1), readable(d.allocate(new byte[] {3, 0}), 2)),
                "device-readable descriptor after a device-writable one");
    }

    @Test
    void aHugeBufferPastGuestMemoryNeedsAReset() {
        assertNeedsResetThenWorks(d -> d.submit(CTRL, readable(d.allocate(new byte[] {3, 0}), 0xffff_ffffL), writable(d.allocate(1), 1)),
                "queue 2");
    }

    @Test
    void aChainThatLoopsNeedsAReset() {
        assertNeedsResetThenWorks(d -> {
            long header = d.allocate(new byte[] {3, 0});
            int head = d.takeDescriptors(CTRL, 1);
            d.writeDescriptor(d.descTable(CTRL), head, header, 2, VIRTQ_DESC_F_NEXT, head); // points at itself
            d.publish(CTRL, head);
            d.notify(CTRL);
        }, "a loop?");
    }
}
