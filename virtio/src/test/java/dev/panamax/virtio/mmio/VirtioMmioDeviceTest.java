package dev.panamax.virtio.mmio;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.EchoDevice;
import dev.panamax.virtio.QueueNotifier;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver.Buffer;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.InterruptLine;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The virtio-mmio transport driven the way Linux's virtio_mmio driver does. */
class VirtioMmioDeviceTest {
    private static final long BASE = 0xd000_0000L;
    private static final int QUEUE_SIZE = 16;

    private final GuestMemory memory = new GuestMemory();
    private final List<String> irq = new ArrayList<>();
    private final List<String> bindings = new ArrayList<>();
    private final QueueNotifier recordingNotifier = new QueueNotifier() {
        @Override
        public void bind(VirtioDevice device, int queue, long address, int length, OptionalLong datamatch) {
            bindings.add(Long.toHexString(address) + "/" + length + "/" + datamatch.orElse(-1) + " -> " + queue);
        }

        @Override
        public void unbindAll(VirtioDevice device) {
            bindings.add("unbind all");
        }
    };
    private final InterruptLine line = asserted -> {
        synchronized (irq) {
            irq.add(asserted ? "high" : "low");
        }
    };
    private EchoDevice echo;
    private VirtioMmioDevice mmio;

    @BeforeEach
    void setUp() {
        memory.addRegion(0, MappedMemory.anonymous(1 << 20));
        echo = new EchoDevice(2, 64);
        mmio = new VirtioMmioDevice(echo, memory, BASE, line, recordingNotifier);
    }

    @AfterEach
    void tearDown() {
        mmio.close();
        memory.close();
    }

    @Test
    void identifiesAsAVersionTwoDeviceAndBindsNotifyWritesByQueueIndex() {
        assertThat(mmio.read(0x000, 4)).isEqualTo(0x74726976L);
        assertThat(mmio.read(0x004, 4)).isEqualTo(2);
        assertThat(mmio.read(0x008, 4)).isEqualTo(EchoDevice.TYPE);
        assertThat(bindings).containsExactly("d0000050/4/0 -> 0", "d0000050/4/1 -> 1");
        mmio.close();
        assertThat(bindings).endsWith("unbind all");
    }

    @Test
    void aDriverInitializesTheDeviceAndGetsAnEdgeAndAStatusBitForUsedBuffers() {
        mmio.write(0x070, 4, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER);
        mmio.write(0x014, 4, 1);
        assertThat(mmio.read(0x010, 4) & 1).as("VIRTIO_F_VERSION_1").isEqualTo(1);
        mmio.write(0x024, 4, 1);
        mmio.write(0x020, 4, 1);
        mmio.write(0x070, 4, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK);
        assertThat(mmio.read(0x070, 4) & VirtioDevice.FEATURES_OK).isNotZero();

        VirtioTestDriver driver = new VirtioTestDriver(echo, memory, QUEUE_SIZE, q -> mmio.write(0x050, 4, q));
        for (int q = 0; q < 2; q++) {
            mmio.write(0x030, 4, q);
            assertThat(mmio.read(0x034, 4)).isEqualTo(64);
            assertThat(mmio.read(0x044, 4)).isZero();
            mmio.write(0x038, 4, QUEUE_SIZE);
            mmio.write(0x080, 4, driver.descTable(q));
            mmio.write(0x084, 4, 0);
            mmio.write(0x090, 4, driver.availRing(q));
            mmio.write(0x094, 4, 0);
            mmio.write(0x0a0, 4, driver.usedRing(q));
            mmio.write(0x0a4, 4, 0);
            mmio.write(0x044, 4, 1);
        }
        mmio.write(0x070, 4, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK | VirtioDevice.DRIVER_OK);

        byte[] message = "through the MMIO transport".getBytes(StandardCharsets.US_ASCII);
        long in = driver.allocate(message);
        long out = driver.allocate(message.length);
        int head = driver.submit(0, Buffer.readable(in, message.length), Buffer.writable(out, message.length));
        assertThat(driver.awaitUsed(0).id()).isEqualTo(head);
        assertThat(driver.read(out, message.length)).isEqualTo(message);
        VirtioTestDriver.await(() -> irqEvents().size() >= 2, "an interrupt edge");
        assertThat(irqEvents()).containsExactly("high", "low");
        assertThat(mmio.read(0x060, 4)).as("InterruptStatus: used buffer").isEqualTo(1);
        mmio.write(0x064, 4, 1);
        assertThat(mmio.read(0x060, 4)).isZero();

        mmio.write(0x070, 4, 0);
        assertThat(mmio.read(0x070, 4)).isZero();
        mmio.write(0x030, 4, 0);
        assertThat(mmio.read(0x044, 4)).as("reset clears QueueReady").isZero();
    }

    @Test
    void aConfigurationChangeRaisesAnEdgeAndItsStatusBitOnceTheDriverRuns() {
        echo.changeConfig();
        assertThat(irqEvents()).as("no interrupt before DRIVER_OK").isEmpty();
        mmio.write(0x070, 4, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER);
        mmio.write(0x024, 4, 1);
        mmio.write(0x020, 4, 1); // VIRTIO_F_VERSION_1
        mmio.write(0x070, 4, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK | VirtioDevice.DRIVER_OK);
        echo.changeConfig();
        assertThat(irqEvents()).containsExactly("high", "low");
        assertThat(mmio.read(0x060, 4)).as("InterruptStatus: configuration change").isEqualTo(2);
    }

    private List<String> irqEvents() {
        synchronized (irq) {
            return List.copyOf(irq);
        }
    }

    @Test
    void oddAccessesAndAbsentQueuesReadZeroAndChangeNothing() {
        assertThat(mmio.read(0x000, 2)).as("registers are 32 bits").isZero();
        mmio.write(0x030, 4, 5);
        assertThat(mmio.read(0x034, 4)).as("QueueNumMax of a queue the device lacks").isZero();
        mmio.write(0x038, 4, 8);
        mmio.write(0x050, 4, 9); // notify of no queue
        mmio.write(0x030, 4, 0);
        assertThat(echo.queue(0).size()).isEqualTo(64);
    }

    @Test
    void deviceConfigurationIsReadFromOffset0x100(@TempDir Path dir) throws IOException {
        Path image = dir.resolve("disk.raw");
        Files.write(image, new byte[1 << 20]);
        try (VirtioBlk blk = VirtioBlk.open("mmio", image, false, 1);
             VirtioMmioDevice transport = new VirtioMmioDevice(blk, memory, BASE + VirtioMmioDevice.SIZE, line, QueueNotifier.NONE)) {
            assertThat(transport.read(0x100, 4)).as("capacity in sectors, low half").isEqualTo(2048);
            assertThat(transport.read(0x104, 4)).isZero();
            assertThat(transport.read(0x008, 4)).isEqualTo(VirtioBlk.DEVICE_TYPE);
            transport.write(0x100, 4, 7);
            assertThat(transport.read(0x100, 4)).as("the driver cannot change it").isEqualTo(2048);
            assertThat(transport.read(VirtioMmioDevice.CONFIG_GENERATION, 4)).as("so its generation stays 0").isZero();
        }
    }
}
