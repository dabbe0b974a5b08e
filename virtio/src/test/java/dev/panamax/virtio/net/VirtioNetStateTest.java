package dev.panamax.virtio.net;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.DeviceStateImage;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** virtio-net quiesced in the middle of a frame, saved and restored; the NIC's identity and announce bit checked. */
class VirtioNetStateTest {
    static final int QUEUE_SIZE = 64;
    static final int RX = VirtioNet.RX;
    static final int HEADER = VirtioNetHeader.BYTES;
    static final MacAddress MAC = MacAddress.parse("52:54:00:12:34:56");
    static final long FEATURES = VirtioNetTest.MERGEABLE | 1L << VirtioDevice.VIRTIO_F_RING_EVENT_IDX;

    GuestMemory memory;
    final List<VirtioNet> devices = new ArrayList<>();

    @BeforeEach
    void setUp() {
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(4 << 20));
    }

    @AfterEach
    void tearDown() {
        devices.forEach(VirtioNet::close);
        memory.close();
    }

    VirtioNet device(MacAddress mac, FakeBackend backend) {
        VirtioNet net = new VirtioNet("net0", mac, backend, QUEUE_SIZE);
        devices.add(net);
        return net;
    }

    static byte[] saved(VirtioNet net) {
        net.quiesce();
        StateWriter out = new StateWriter();
        net.saveState(out);
        return out.toByteArray();
    }

    static void restore(VirtioNet net, byte[] state) {
        StateReader in = new StateReader(state, "the snapshot");
        net.restoreState(in);
        in.end();
    }

    @Test
    void receiveBuffersHalfFilledWhenQuiescedGoBackToTheRingAndTheRestoredDeviceFillsThem() {
        FakeBackend backend = new FakeBackend(Set.of());
        VirtioNet net = device(MAC, backend);
        VirtioTestDriver driver = new VirtioTestDriver(net, memory);
        driver.start(FEATURES, QUEUE_SIZE);
        long[] buffers = new long[2];
        int[] heads = new int[2];
        for (int i = 0; i < 2; i++) {
            buffers[i] = driver.allocate(100);
            heads[i] = driver.submit(RX, writable(buffers[i], 100));
        }
        // Three buffers' worth: the device fills both and waits for a third, asking to be told at entry 2.
        backend.offer(VirtioNetTest.concat(VirtioNetTest.header(0, 0, 1), VirtioNetTest.frame(250, 14)));
        VirtioTestDriver.await(() -> driver.availEvent(RX) == 2, "the device to take both buffers and wait for more");
        byte[] state = saved(net);
        assertThat(driver.usedIdx(RX)).as("no part of the frame given to the driver").isZero();
        net.close();

        FakeBackend after = new FakeBackend(Set.of());
        VirtioNet fresh = device(MAC, after);
        fresh.connect(memory, driver.interrupts());
        restore(fresh, state);
        byte[] packet = VirtioNetTest.concat(VirtioNetTest.header(0, 0, 1), VirtioNetTest.frame(60, 15));
        after.offer(packet);
        assertThat(driver.awaitUsed(RX)).isEqualTo(new Used(heads[0], packet.length));
        assertThat(driver.read(buffers[0], packet.length)).isEqualTo(packet);
    }

    @Test
    void aQuiescedDeviceResumesAndFinishesTheFrameInHand() {
        FakeBackend backend = new FakeBackend(Set.of());
        VirtioNet net = device(MAC, backend);
        VirtioTestDriver driver = new VirtioTestDriver(net, memory);
        driver.start(FEATURES, QUEUE_SIZE);
        int[] heads = new int[3];
        for (int i = 0; i < 2; i++) {
            heads[i] = driver.submit(RX, writable(driver.allocate(100), 100));
        }
        backend.offer(VirtioNetTest.concat(VirtioNetTest.header(0, 0, 1), VirtioNetTest.frame(250, 14)));
        VirtioTestDriver.await(() -> driver.availEvent(RX) == 2, "the device to take both buffers and wait for more");
        net.quiesce();
        heads[2] = driver.submit(RX, writable(driver.allocate(100), 100));
        net.resumeWork();
        assertThat(List.of(driver.awaitUsed(RX), driver.awaitUsed(RX), driver.awaitUsed(RX)))
                .containsExactly(new Used(heads[0], 100), new Used(heads[1], 100), new Used(heads[2], 62));
    }

    String refusal(VirtioNet saved, VirtioNet other) {
        VirtioTestDriver driver = new VirtioTestDriver(saved, memory);
        driver.start(FEATURES, QUEUE_SIZE);
        byte[] state = saved(saved);
        other.connect(memory, driver.interrupts());
        Throwable thrown = org.assertj.core.api.Assertions.catchThrowable(() -> restore(other, state));
        assertThat(thrown).isInstanceOf(StateFormatException.class);
        assertThat(other.status()).as("nothing applied").isZero();
        return thrown.getMessage();
    }

    @Test
    void anotherMacIsRefusedNamingBoth() {
        assertThat(refusal(device(MAC, new FakeBackend(Set.of())), device(MacAddress.parse("52:54:00:00:00:01"), new FakeBackend(Set.of()))))
                .isEqualTo("section identity of the snapshot: the snapshot's virtio-net (net0) has MAC address 52:54:00:12:34:56,"
                        + " and this VM's has 52:54:00:00:00:01");
    }

    @Test
    void anotherKindOfBackendIsRefused() {
        FakeBackend passt = new FakeBackend(Set.of());
        passt.kind = "passt";
        assertThat(refusal(device(MAC, new FakeBackend(Set.of())), device(MAC, passt)))
                .isEqualTo("section identity of the snapshot: the snapshot's virtio-net (net0) is on a tap backend, and this VM's is on passt");
    }

    @Test
    void aPendingAnnouncementAndTheRunningControlQueueSurviveASaveAndRestore() {
        VirtioNet net = device(MAC, new FakeBackend(Set.of()));
        VirtioTestDriver driver = new VirtioTestDriver(net, memory);
        driver.start(VirtioNetAnnounceTest.ANNOUNCING, QUEUE_SIZE);
        net.announce();
        byte[] state = saved(net);
        net.close();

        VirtioNet fresh = device(MAC, new FakeBackend(Set.of()));
        VirtioTestDriver continued = driver.continuedOn(fresh);
        restore(fresh, state);
        assertThat(fresh.announcePending()).isTrue();
        assertThat(fresh.linkUp()).isTrue();
        assertThat(continued.interrupts().configCount()).as("the driver that was told runs on: no new interrupt").isZero();

        // The guest acknowledges on the restored control queue, which runs where the saved one stood.
        long ack = continued.allocate(new byte[] {(byte) 0xff});
        continued.submit(VirtioNet.CTRL, readable(continued.allocate(new byte[] {VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE,
                VirtioNet.VIRTIO_NET_CTRL_ANNOUNCE_ACK}), 2), writable(ack, 1));
        assertThat(continued.awaitUsed(VirtioNet.CTRL).length()).isEqualTo(1);
        assertThat(continued.read(ack, 1)).containsExactly(VirtioNet.VIRTIO_NET_OK);
        assertThat(fresh.announcePending()).isFalse();

        // Saved again without the bit: restored without it.
        byte[] acknowledged = saved(fresh);
        fresh.close();
        VirtioNet third = device(MAC, new FakeBackend(Set.of()));
        continued.continuedOn(third);
        restore(third, acknowledged);
        assertThat(third.announcePending()).isFalse();
    }

    /**
     * A migration's destination: the NIC built without its backend, bound to the real one after,
     * offers that backend's offloads, and takes the saved running device's state and runs on it.
     */
    @Test
    void aDeviceBuiltUnboundTakesItsBackendLaterAndThenTheSavedStateAndRunsOnIt() {
        Set<NetOffload> offloads = Set.of(NetOffload.CHECKSUM, NetOffload.TSO4);
        FakeBackend before = new FakeBackend(offloads);
        VirtioNet net = device(MAC, before);
        VirtioTestDriver driver = new VirtioTestDriver(net, memory);
        driver.start(FEATURES | 1L << VirtioNet.VIRTIO_NET_F_GUEST_CSUM, QUEUE_SIZE);
        long buffer = driver.allocate(100);
        int head = driver.submit(RX, writable(buffer, 100));
        byte[] state = saved(net);
        net.close();

        VirtioNet late = VirtioNet.unbound("net0", MAC, "tap", QUEUE_SIZE, dev.panamax.virtio.ratelimit.RateLimiter.unlimited(),
                dev.panamax.virtio.ratelimit.RateLimiter.unlimited());
        devices.add(late);
        assertThat(late.deviceFeatures()).as("unbound: no offloads").isEqualTo(device(MAC, new FakeBackend(Set.of())).deviceFeatures());
        FakeBackend after = new FakeBackend(offloads);
        late.bindBackend(after);
        assertThat(late.deviceFeatures()).as("bound: the backend's offloads").isEqualTo(net.deviceFeatures());
        late.connect(memory, driver.interrupts());
        restore(late, state);
        byte[] packet = VirtioNetTest.concat(VirtioNetTest.header(0, 0, 1), VirtioNetTest.frame(60, 15));
        after.offer(packet);
        assertThat(driver.awaitUsed(RX)).isEqualTo(new Used(head, packet.length));
        assertThat(after.receiveOffloads).as("the driver's receive offloads, given to the bound backend").containsExactly(NetOffload.CHECKSUM);
        assertThatThrownBy(() -> late.bindBackend(new FakeBackend(Set.of()))).isInstanceOf(IllegalStateException.class)
                .hasMessage("virtio-net (net0) has its backend already");
    }

    /** The driver's state refused when the backend bound lacks an offload the driver accepted, as a restore onto it would be. */
    @Test
    void aBoundBackendWithoutAnOffloadTheDriverAcceptedIsRefusedAtTheRestore() {
        VirtioNet net = device(MAC, new FakeBackend(Set.of(NetOffload.CHECKSUM)));
        VirtioTestDriver driver = new VirtioTestDriver(net, memory);
        driver.start(FEATURES | 1L << VirtioNet.VIRTIO_NET_F_GUEST_CSUM, QUEUE_SIZE);
        byte[] state = saved(net);
        net.close();

        VirtioNet late = VirtioNet.unbound("net0", MAC, "tap", QUEUE_SIZE, dev.panamax.virtio.ratelimit.RateLimiter.unlimited(),
                dev.panamax.virtio.ratelimit.RateLimiter.unlimited());
        devices.add(late);
        late.bindBackend(new FakeBackend(Set.of()));
        late.connect(memory, driver.interrupts());
        assertThatThrownBy(() -> restore(late, state)).isInstanceOf(StateFormatException.class).hasMessageContaining("the driver accepted");
    }

    @Test
    void aBackendOfAnotherKindOrOneBoundAfterTheDriverBeganIsRefusedAndClosed() {
        VirtioNet late = VirtioNet.unbound("net0", MAC, "tap", QUEUE_SIZE, dev.panamax.virtio.ratelimit.RateLimiter.unlimited(),
                dev.panamax.virtio.ratelimit.RateLimiter.unlimited());
        devices.add(late);
        FakeBackend passt = new FakeBackend(Set.of());
        passt.kind = "passt";
        assertThatThrownBy(() -> late.bindBackend(passt)).isInstanceOf(IllegalStateException.class)
                .hasMessage("virtio-net (net0) was built for a tap backend, not passt");
        assertThat(passt.closed).isTrue();

        new VirtioTestDriver(late, memory).start(FEATURES, QUEUE_SIZE);
        FakeBackend tooLate = new FakeBackend(Set.of());
        assertThatThrownBy(() -> late.bindBackend(tooLate)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("the driver has begun");
        assertThat(tooLate.closed).isTrue();
    }

    /** A saved running device with every queue at used index 0 and {@code identity} written by hand. */
    String refusedImage(long accepted, java.util.function.Consumer<StateWriter> identity) {
        VirtioNet net = device(MAC, new FakeBackend(Set.of()));
        VirtioTestDriver driver = new VirtioTestDriver(net, memory);
        DeviceStateImage image = DeviceStateImage.running(net, driver, QUEUE_SIZE, 0);
        image.accepted = accepted;
        image.identity = identity;
        StateWriter out = new StateWriter();
        image.write(out);
        Throwable thrown = org.assertj.core.api.Assertions.catchThrowable(() -> restore(net, out.toByteArray()));
        assertThat(thrown).isInstanceOf(StateFormatException.class);
        assertThat(net.status()).as("nothing applied").isZero();
        assertThat(net.announcePending()).isFalse();
        return thrown.getMessage();
    }

    @Test
    void anAnnouncementPendingForADriverWithoutGuestAnnounceIsRefused() {
        long accepted = VirtioNetAnnounceTest.CONTROL;
        assertThat(refusedImage(accepted, w -> w.bytes(MAC.bytes()).bool(true).string("tap").string("fake0").bool(true)))
                .isEqualTo(String.format("the snapshot: the snapshot's virtio-net (net0) has an announcement pending (VIRTIO_NET_S_ANNOUNCE),"
                        + " and its driver did not accept VIRTIO_NET_F_GUEST_ANNOUNCE with VIRTIO_NET_F_CTRL_VQ (features 0x%x, status 0x0f)",
                        accepted));
    }

    @Test
    void aDeviceSavedBeforeTheControlQueueIsRefusedSayingSo() {
        assertThat(refusedImage(VirtioNetTest.MERGEABLE, w -> w.bytes(MAC.bytes()).bool(true).string("tap").string("fake0")))
                .isEqualTo("section identity of the snapshot: the snapshot's virtio-net (net0) has no announce bit after its identity: it"
                        + " was saved by a Panamax whose virtio-net had no control queue, and this one cannot restore it");
    }
}
