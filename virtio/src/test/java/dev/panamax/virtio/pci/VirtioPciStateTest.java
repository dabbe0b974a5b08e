package dev.panamax.virtio.pci;

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
import dev.panamax.vm.MsiVector;
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

/** Quiesce, save and restore through the PCI transport's common configuration. */
class VirtioPciStateTest {
    private static final int QUEUE_SIZE = 16;

    private final GuestMemory memory = new GuestMemory();
    private final List<VirtioPciDevice> transports = new ArrayList<>();

    @BeforeEach
    void setUp() {
        memory.addRegion(0, MappedMemory.anonymous(1 << 20));
    }

    @AfterEach
    void tearDown() {
        transports.forEach(VirtioPciDevice::close);
        memory.close();
    }

    private VirtioPciDevice transport(VirtioDevice device) {
        VirtioPciDevice pci = new VirtioPciDevice(device, memory, () -> new MsiVector() {
            @Override
            public void program(long address, int data) {}

            @Override
            public void signal() {}

            @Override
            public void close() {}
        }, QueueNotifier.NONE);
        transports.add(pci);
        return pci;
    }

    private static long read(VirtioPciDevice pci, long offset, int size) {
        return pci.barHandler(VirtioPciDevice.BAR).read(offset, size);
    }

    private static void write(VirtioPciDevice pci, long offset, int size, long value) {
        pci.barHandler(VirtioPciDevice.BAR).write(offset, size, value);
    }

    /** Linux's initialisation through the common configuration: every feature, both queues, a vector each, DRIVER_OK. */
    private static VirtioTestDriver initialize(VirtioPciDevice pci, VirtioDevice device, GuestMemory memory) {
        write(pci, 0x14, 1, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER);
        for (int select = 0; select < 2; select++) {
            write(pci, 0x00, 4, select);
            write(pci, 0x08, 4, select);
            write(pci, 0x0c, 4, read(pci, 0x04, 4));
        }
        write(pci, 0x14, 1, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK);
        write(pci, 0x10, 2, 0);
        VirtioTestDriver driver = new VirtioTestDriver(device, memory, QUEUE_SIZE, q -> write(pci, VirtioPciDevice.NOTIFY + 4L * q, 2, q));
        for (int q = 0; q < device.queueCount(); q++) {
            write(pci, 0x16, 2, q);
            write(pci, 0x18, 2, QUEUE_SIZE);
            write(pci, 0x1a, 2, q + 1);
            write(pci, 0x20, 8, driver.descTable(q));
            write(pci, 0x28, 8, driver.availRing(q));
            write(pci, 0x30, 8, driver.usedRing(q));
            write(pci, 0x1c, 2, 1);
        }
        write(pci, 0x14, 1, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK | VirtioDevice.DRIVER_OK);
        return driver;
    }

    /** The common configuration as the driver reads it, with queue {@code q} selected, and the ISR last (reading it clears it). */
    private static List<Long> common(VirtioPciDevice pci) {
        List<Long> values = new ArrayList<>();
        for (int offset = 0; offset < VirtioPciDevice.COMMON_SIZE; offset += 2) {
            values.add(read(pci, offset, 2));
        }
        values.add(read(pci, VirtioPciDevice.ISR, 1));
        return values;
    }

    /** The configuration space and MSI-X sections of {@code pci} as it is, for a hand-made state. */
    private static void pciSections(StateWriter out, VirtioPciDevice pci) {
        out.section("pci-config", pci.config());
        out.section("msix", pci.msix());
    }

    private static byte[] pciState(VirtioPciDevice pci) {
        StateWriter out = new StateWriter();
        pciSections(out, pci);
        return out.toByteArray();
    }

    private static byte[] save(VirtioPciDevice pci) {
        StateWriter out = new StateWriter();
        pci.saveState(out);
        return out.toByteArray();
    }

    private static void restore(VirtioPciDevice pci, byte[] state) {
        StateReader in = new StateReader(state, "the snapshot");
        pci.restoreState(in);
        in.end();
    }

    @Test
    void aRestoredDeviceAnswersItsCommonConfigurationTheSameAndTakesTheBuffersLeft() {
        EchoDevice echo = new EchoDevice(2, 64);
        VirtioPciDevice pci = transport(echo);
        VirtioTestDriver driver = initialize(pci, echo, memory);
        byte[] first = "answered before".getBytes(StandardCharsets.US_ASCII);
        driver.submit(1, Buffer.readable(driver.allocate(first), first.length), Buffer.writable(driver.allocate(first.length), first.length));
        driver.awaitUsed(1);
        pci.quiesce();
        byte[] message = "left available".getBytes(StandardCharsets.US_ASCII);
        long out = driver.allocate(message.length);
        int head = driver.offer(1, Buffer.readable(driver.allocate(message), message.length), Buffer.writable(out, message.length));
        write(pci, 0x00, 4, 1);
        write(pci, 0x08, 4, 1);
        write(pci, 0x16, 2, 1);
        byte[] state = save(pci);
        List<Long> before = common(pci);
        byte[] configAndMsix = pciState(pci);
        pci.close();
        transports.remove(pci);

        EchoDevice fresh = new EchoDevice(2, 64);
        VirtioPciDevice restored = transport(fresh);
        restore(restored, state);
        assertThat(common(restored)).isEqualTo(before);
        assertThat(pciState(restored)).as("the configuration space and MSI-X, enabled by the driver").isEqualTo(configAndMsix);
        assertThat(read(restored, 0x1a, 2)).as("queue 1's vector").isEqualTo(2);
        assertThat(read(restored, 0x30, 8)).as("queue 1's used ring").isEqualTo(driver.usedRing(1));
        assertThat(driver.awaitUsed(1).id()).isEqualTo(head);
        assertThat(driver.usedIdx(1)).isEqualTo(2);
        assertThat(driver.read(out, message.length)).isEqualTo(message);
    }

    private String refusal(Consumer<StateWriter> registers) {
        EchoDevice fresh = new EchoDevice(2, 64);
        VirtioPciDevice restored = transport(fresh);
        VirtioTestDriver driver = new VirtioTestDriver(fresh, memory, QUEUE_SIZE, q -> {});
        StateWriter out = new StateWriter();
        pciSections(out, restored);
        out.section("virtio", DeviceStateImage.running(fresh, driver, QUEUE_SIZE, 0)::write);
        out.section("virtio-pci", registers);
        Throwable thrown = org.assertj.core.api.Assertions.catchThrowable(() -> restore(restored, out.toByteArray()));
        assertThat(thrown).isInstanceOf(StateFormatException.class);
        assertThat(fresh.status()).as("nothing applied").isZero();
        assertThat(read(restored, 0x10, 2)).as("nothing applied").isEqualTo(VirtioPciDevice.NO_VECTOR);
        return thrown.getMessage();
    }

    @Test
    void vectorsOutsideTheMsixTableAreRefused() {
        assertThat(refusal(w -> w.i32(0).i32(0).u16(0).u16(3).i32(2).u16(1).u16(2).i32(0)))
                .isEqualTo("section virtio-pci of the snapshot: configuration vector is 3; echo (test)'s MSI-X table has vectors 0 to 2"
                        + " (or 65535 for none)");
        assertThat(refusal(w -> w.i32(0).i32(0).u16(0).u16(0).i32(2).u16(1).u16(0x1234).i32(0)))
                .contains("queue 1 vector is 4660");
    }

    @Test
    void anotherQueueCountOrABadIsrIsRefused() {
        assertThat(refusal(w -> w.i32(0).i32(0).u16(0).u16(0).i32(1).u16(1).i32(0)))
                .contains("the snapshot's device has 1 queue vectors, and echo (test) has 2 queues");
        assertThat(refusal(w -> w.i32(0).i32(0).u16(0).u16(0).i32(2).u16(1).u16(2).i32(8)))
                .contains("ISR status is 8, outside 0 to 3");
    }

    @Test
    void theUnchangedRegistersRestore() {
        EchoDevice fresh = new EchoDevice(2, 64);
        VirtioPciDevice restored = transport(fresh);
        VirtioTestDriver driver = new VirtioTestDriver(fresh, memory, QUEUE_SIZE, q -> {});
        StateWriter out = new StateWriter();
        pciSections(out, restored);
        out.section("virtio", DeviceStateImage.running(fresh, driver, QUEUE_SIZE, 0)::write);
        out.section("virtio-pci", w -> w.i32(0).i32(0).u16(1).u16(0).i32(2).u16(1).u16(VirtioPciDevice.NO_VECTOR).i32(0));
        restore(restored, out.toByteArray());
        assertThat(read(restored, 0x1a, 2)).as("queue 1's vector").isEqualTo(VirtioPciDevice.NO_VECTOR);
        assertThat(read(restored, 0x10, 2)).isZero();
        assertThat(fresh.status() & VirtioDevice.DRIVER_OK).isNotZero();
    }

    @Test
    void savingADeviceThatIsNotQuiescedIsRefused() {
        EchoDevice echo = new EchoDevice(2, 64);
        VirtioPciDevice pci = transport(echo);
        initialize(pci, echo, memory);
        assertThatThrownBy(() -> save(pci)).isInstanceOf(IllegalStateException.class).hasMessageContaining("quiesce");
    }
}
