package dev.panamax.virtio.mmio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.DeviceStateImage;
import dev.panamax.virtio.EchoDevice;
import dev.panamax.virtio.QueueNotifier;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver.Buffer;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.InterruptLine;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Quiesce, save and restore through the virtio-mmio transport, and restores of malformed state refused field by field. */
class VirtioMmioStateTest {
    private static final long BASE = 0xd000_0000L;
    private static final int QUEUE_SIZE = 16;
    private static final int ALL_STATUS = VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK
            | VirtioDevice.DRIVER_OK;

    private final GuestMemory memory = new GuestMemory();
    private final List<String> irq = new ArrayList<>();
    private final InterruptLine line = asserted -> {
        synchronized (irq) {
            irq.add(asserted ? "high" : "low");
        }
    };
    private final List<AutoCloseable> transports = new ArrayList<>();

    @BeforeEach
    void setUp() {
        memory.addRegion(0, MappedMemory.anonymous(1 << 20));
    }

    @AfterEach
    void tearDown() throws Exception {
        for (AutoCloseable t : transports) {
            t.close();
        }
        memory.close();
    }

    private VirtioMmioDevice transport(VirtioDevice device) {
        VirtioMmioDevice mmio = new VirtioMmioDevice(device, memory, BASE, line, QueueNotifier.NONE);
        transports.add(mmio);
        return mmio;
    }

    /** Linux's initialisation through the registers: every feature, both queues of QUEUE_SIZE entries, DRIVER_OK. */
    private static VirtioTestDriver initialize(VirtioMmioDevice mmio, VirtioDevice device, GuestMemory memory) {
        mmio.write(VirtioMmioDevice.STATUS, 4, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER);
        for (int select = 0; select < 2; select++) {
            mmio.write(VirtioMmioDevice.DEVICE_FEATURES_SEL, 4, select);
            mmio.write(VirtioMmioDevice.DRIVER_FEATURES_SEL, 4, select);
            mmio.write(VirtioMmioDevice.DRIVER_FEATURES, 4, mmio.read(VirtioMmioDevice.DEVICE_FEATURES, 4));
        }
        mmio.write(VirtioMmioDevice.STATUS, 4, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK);
        VirtioTestDriver driver = new VirtioTestDriver(device, memory, QUEUE_SIZE, q -> mmio.write(VirtioMmioDevice.QUEUE_NOTIFY, 4, q));
        for (int q = 0; q < device.queueCount(); q++) {
            mmio.write(VirtioMmioDevice.QUEUE_SEL, 4, q);
            mmio.write(VirtioMmioDevice.QUEUE_NUM, 4, QUEUE_SIZE);
            mmio.write(VirtioMmioDevice.QUEUE_DESC_LOW, 4, driver.descTable(q));
            mmio.write(VirtioMmioDevice.QUEUE_DRIVER_LOW, 4, driver.availRing(q));
            mmio.write(VirtioMmioDevice.QUEUE_DEVICE_LOW, 4, driver.usedRing(q));
            mmio.write(VirtioMmioDevice.QUEUE_READY, 4, 1);
        }
        mmio.write(VirtioMmioDevice.STATUS, 4, ALL_STATUS);
        return driver;
    }

    /** What the driver can read of the transport: identity, features through both selectors, each queue, status. */
    private static List<Long> registers(VirtioMmioDevice mmio) {
        List<Long> values = new ArrayList<>();
        for (int offset : new int[] {VirtioMmioDevice.MAGIC_VALUE, VirtioMmioDevice.DEVICE_ID, VirtioMmioDevice.DEVICE_FEATURES,
                VirtioMmioDevice.QUEUE_NUM_MAX, VirtioMmioDevice.QUEUE_READY, VirtioMmioDevice.STATUS,
                VirtioMmioDevice.CONFIG_GENERATION}) {
            values.add(mmio.read(offset, 4));
        }
        return values;
    }

    private static byte[] save(VirtioMmioDevice mmio) {
        StateWriter out = new StateWriter();
        mmio.saveState(out);
        return out.toByteArray();
    }

    private static void restore(VirtioMmioDevice mmio, byte[] state) {
        StateReader in = new StateReader(state, "the snapshot");
        mmio.restoreState(in);
        in.end();
    }

    private List<String> irqEvents() {
        synchronized (irq) {
            return List.copyOf(irq);
        }
    }

    private record Request(int head, long out, byte[] message) {}

    private static Request offer(VirtioTestDriver driver, String text) {
        byte[] message = text.getBytes(StandardCharsets.US_ASCII);
        long in = driver.allocate(message);
        long out = driver.allocate(message.length);
        int head = driver.offer(0, Buffer.readable(in, message.length), Buffer.writable(out, message.length));
        return new Request(head, out, message);
    }

    @Test
    void aRestoredDeviceTakesTheBuffersLeftAvailableAndGoesOnFromItsUsedIndex() {
        EchoDevice echo = new EchoDevice(2, 64);
        VirtioMmioDevice mmio = transport(echo);
        VirtioTestDriver driver = initialize(mmio, echo, memory);
        for (int i = 0; i < 3; i++) {
            Request r = offer(driver, "before the snapshot " + i);
            driver.notify(0);
            assertThat(driver.awaitUsed(0).id()).isEqualTo(r.head());
        }
        mmio.quiesce();
        // Made available while the device is quiesced, and kicked: it must not take them now.
        Request left1 = offer(driver, "left available 1");
        Request left2 = offer(driver, "left available 2");
        driver.notify(0);
        mmio.write(VirtioMmioDevice.DEVICE_FEATURES_SEL, 4, 1);
        mmio.write(VirtioMmioDevice.QUEUE_SEL, 4, 1);
        List<Long> before = registers(mmio);
        byte[] state = save(mmio);
        assertThat(driver.usedIdx(0)).as("nothing taken while quiesced").isEqualTo(3);
        assertThat(driver.read(left1.out(), left1.message().length)).as("nothing written while quiesced").containsOnly(0);

        mmio.close();
        transports.remove(mmio);
        EchoDevice fresh = new EchoDevice(2, 64);
        VirtioMmioDevice restored = transport(fresh);
        restore(restored, state);

        assertThat(registers(restored)).isEqualTo(before);
        assertThat(restored.read(VirtioMmioDevice.DEVICE_FEATURES, 4)).as("features word 1: VERSION_1").isEqualTo(1);
        assertThat(restored.read(VirtioMmioDevice.QUEUE_READY, 4)).as("queue 1 selected and ready").isEqualTo(1);
        assertThat(driver.awaitUsed(0).id()).isEqualTo(left1.head());
        assertThat(driver.awaitUsed(0).id()).isEqualTo(left2.head());
        assertThat(driver.usedIdx(0)).isEqualTo(5);
        assertThat(driver.read(left1.out(), left1.message().length)).isEqualTo(left1.message());
        assertThat(driver.read(left2.out(), left2.message().length)).isEqualTo(left2.message());

        Request after = offer(driver, "after the restore");
        restored.write(VirtioMmioDevice.QUEUE_NOTIFY, 4, 0);
        assertThat(driver.awaitUsed(0).id()).isEqualTo(after.head());
        assertThat(driver.read(after.out(), after.message().length)).isEqualTo(after.message());
        assertThat(restored.read(VirtioMmioDevice.INTERRUPT_STATUS, 4)).as("used-buffer interrupt").isEqualTo(1);
    }

    @Test
    void aQuiescedDeviceResumesWithoutARestore() {
        EchoDevice echo = new EchoDevice(2, 64);
        VirtioMmioDevice mmio = transport(echo);
        VirtioTestDriver driver = initialize(mmio, echo, memory);
        mmio.quiesce();
        Request r = offer(driver, "held back");
        driver.notify(0);
        assertThat(save(mmio)).as("a quiesced device can be saved").isNotEmpty();
        mmio.resumeWork();
        assertThat(driver.awaitUsed(0).id()).isEqualTo(r.head());
        assertThat(driver.read(r.out(), r.message().length)).isEqualTo(r.message());
    }

    @Test
    void savingADeviceThatIsNotQuiescedIsRefused() {
        EchoDevice echo = new EchoDevice(2, 64);
        VirtioMmioDevice mmio = transport(echo);
        initialize(mmio, echo, memory);
        assertThatThrownBy(() -> save(mmio)).isInstanceOf(IllegalStateException.class).hasMessageContaining("quiesce");
    }

    @Test
    void aPendingInterruptIsRaisedAgainOnRestore() {
        VirtioMmioDevice mmio = transport(new EchoDevice(2, 64));
        mmio.config();
        byte[] state = save(mmio);
        VirtioMmioDevice restored = transport(new EchoDevice(2, 64));
        irq.clear();
        restore(restored, state);
        assertThat(irqEvents()).containsExactly("high", "low");
        assertThat(restored.read(VirtioMmioDevice.INTERRUPT_STATUS, 4)).isEqualTo(2);
    }

    // ---- Malformed state ----

    /** State of a running echo device behind MMIO, as {@code change} leaves it. */
    private byte[] hostile(EchoDevice device, Consumer<DeviceStateImage> change) {
        VirtioTestDriver driver = new VirtioTestDriver(device, memory, QUEUE_SIZE, q -> {});
        DeviceStateImage image = DeviceStateImage.running(device, driver, QUEUE_SIZE, 7);
        for (int q = 0; q < device.queueCount(); q++) {
            driver.setAvailIdx(q, 7); // the rings in memory where the saved positions say
        }
        change.accept(image);
        StateWriter out = new StateWriter();
        out.section("virtio", image::write);
        out.section("virtio-mmio", w -> w.i32(0).i32(0).i32(0).i32(1));
        return out.toByteArray();
    }

    /** Restores {@code change}d state into a fresh device and returns the message; the device must be left untouched. */
    private String refusal(Consumer<DeviceStateImage> change) {
        EchoDevice fresh = new EchoDevice(2, 64);
        VirtioMmioDevice restored = transport(fresh);
        byte[] state = hostile(fresh, change);
        Throwable thrown = org.assertj.core.api.Assertions.catchThrowable(() -> restore(restored, state));
        assertThat(thrown).isInstanceOf(StateFormatException.class);
        assertThat(fresh.status()).as("nothing applied").isZero();
        assertThat(restored.read(VirtioMmioDevice.INTERRUPT_STATUS, 4)).as("nothing applied").isZero();
        assertThat(fresh.queue(0).ready()).as("nothing applied").isFalse();
        return thrown.getMessage();
    }

    @Test
    void theUnchangedImageRestores() {
        EchoDevice fresh = new EchoDevice(2, 64);
        VirtioMmioDevice restored = transport(fresh);
        restore(restored, hostile(fresh, image -> {}));
        assertThat(fresh.status()).isEqualTo(ALL_STATUS);
        assertThat(restored.read(VirtioMmioDevice.INTERRUPT_STATUS, 4)).isEqualTo(1);
    }

    @Test
    void aRingOutsideGuestMemoryIsRefused() {
        assertThat(refusal(image -> image.queues.get(1).ringUsed = 0x7fff_0000L))
                .isEqualTo("section virtio of the snapshot: queue 1: used ring at 0x7fff0000 (134 bytes) is not inside guest memory");
        assertThat(refusal(image -> image.queues.get(0).ringAvail = Long.MIN_VALUE))
                .contains("queue 0: available ring at 0x8000000000000000 (38 bytes) is not inside guest memory");
    }

    @Test
    void aMisalignedRingIsRefused() {
        assertThat(refusal(image -> image.queues.get(0).ringDesc = 0x1008))
                .contains("queue 0: descriptor table at 0x1008 (256 bytes) is not 16-byte aligned");
    }

    @Test
    void aQueueSizeAboveTheMaximumIsRefused() {
        assertThat(refusal(image -> image.queues.get(0).size = 128))
                .isEqualTo("section virtio of the snapshot: queue 0: size 128 is more than echo (test)'s maximum 64");
        assertThat(refusal(image -> image.queues.get(0).ringSize = 128))
                .contains("queue 0: size 128 is not a power of two from 1 to 64");
    }

    @Test
    void requestsTakenAndNotAnsweredAreRefused() {
        assertThat(refusal(image -> image.queues.get(0).lastAvail = 9))
                .contains("queue 0: 2 requests were taken and not answered (last_avail_idx 9, used index 7)");
    }

    @Test
    void anImpossibleStatusIsRefused() {
        assertThat(refusal(image -> image.status |= 0x10)).contains("device status 0x1f has reserved bits 0x10 set");
        assertThat(refusal(image -> image.status &= ~VirtioDevice.FEATURES_OK))
                .contains("device status 0x07 has DRIVER_OK without FEATURES_OK");
        assertThat(refusal(image -> image.status |= VirtioDevice.DEVICE_NEEDS_RESET))
                .contains("device status 0x4f has DEVICE_NEEDS_RESET and no reason for it");
        assertThat(refusal(image -> image.status = VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK))
                .contains("queue 0 is running, and the device status 0x0b has no DRIVER_OK");
    }

    @Test
    void featuresTheDeviceDoesNotOfferAreRefused() {
        assertThat(refusal(image -> image.accepted |= 1L << 40)).contains("the driver accepted features 0x10130000000, and echo (test) offers 0x130000000");
        assertThat(refusal(image -> image.accepted &= ~(1L << VirtioDevice.VIRTIO_F_VERSION_1))).contains("lack VIRTIO_F_VERSION_1");
    }

    @Test
    void anotherDeviceTypeOrQueueCountIsRefused() {
        assertThat(refusal(image -> image.type = 2))
                .contains("the snapshot's device is of virtio type 2, and echo (test) is of type 127");
        assertThat(refusal(image -> image.queues.removeLast()))
                .contains("the snapshot's device has 1 queues, and echo (test) has 2");
        assertThat(refusal(image -> image.generation = 3)).contains("configuration generation is 3");
    }

    @Test
    void aBadInterruptStatusIsRefused() {
        EchoDevice fresh = new EchoDevice(2, 64);
        VirtioMmioDevice restored = transport(fresh);
        VirtioTestDriver driver = new VirtioTestDriver(fresh, memory, QUEUE_SIZE, q -> {});
        StateWriter out = new StateWriter();
        out.section("virtio", DeviceStateImage.running(fresh, driver, QUEUE_SIZE, 0)::write);
        out.section("virtio-mmio", w -> w.i32(0).i32(0).i32(0).i32(4));
        assertThatThrownBy(() -> restore(restored, out.toByteArray())).isInstanceOf(StateFormatException.class)
                .hasMessage("section virtio-mmio of the snapshot: interrupt status is 4, outside 0 to 3");
        assertThat(fresh.status()).as("nothing applied").isZero();
    }
}
