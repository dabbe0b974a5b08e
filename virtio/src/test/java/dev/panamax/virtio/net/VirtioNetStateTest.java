package dev.panamax.virtio.net;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.MappedMemory;
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

/** virtio-net quiesced in the middle of a frame, saved and restored; the NIC's identity checked. */
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
}
