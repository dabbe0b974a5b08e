package dev.panamax.virtio.pci;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.devices.pci.PciBus;
import dev.panamax.sys.MappedMemory;
import dev.panamax.vm.AddressBus;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.MmioDevice;
import dev.panamax.vm.MsiVector;
import dev.panamax.virtio.EchoDevice;
import dev.panamax.virtio.QueueNotifier;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.virtio.VirtioTestDriver.Buffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The modern PCI transport driven the way Linux's virtio_pci_modern does, through configuration space and the BAR. */
class VirtioPciDeviceTest {
    private static final long WINDOW = 0xc000_0000L;
    private static final int QUEUE_SIZE = 16;

    private final GuestMemory memory = new GuestMemory();
    private final AddressBus<MmioDevice> mmio = new AddressBus<>("MMIO bus");
    private final PciBus bus = new PciBus(mmio, WINDOW, WINDOW + 0x1000_0000L);
    /** What each MSI vector was asked to do, by vector number (table order). */
    private final List<List<String>> msi = new ArrayList<>();
    private final Map<String, Integer> bindings = new HashMap<>();
    private EchoDevice echo;
    private VirtioPciDevice pci;
    private int slot;

    @BeforeEach
    void setUp() {
        memory.addRegion(0, MappedMemory.anonymous(1 << 20));
        echo = new EchoDevice(2, 64);
        pci = new VirtioPciDevice(echo, memory, () -> {
            List<String> events = new ArrayList<>();
            msi.add(events);
            return new MsiVector() {
                @Override
                public void program(long address, int data) {
                    synchronized (events) {
                        events.add("program " + Long.toHexString(address) + "/" + data);
                    }
                }

                @Override
                public void signal() {
                    synchronized (events) {
                        events.add("signal");
                    }
                }

                @Override
                public void close() {}
            };
        }, new QueueNotifier() {
            @Override
            public void bind(VirtioDevice device, int queue, long address, int length, OptionalLong datamatch) {
                bindings.put(Long.toHexString(address), queue);
            }

            @Override
            public void unbindAll(VirtioDevice device) {
                bindings.clear();
            }
        });
        slot = bus.add(pci);
    }

    @AfterEach
    void tearDown() {
        pci.close();
        memory.close();
    }

    private int configRead(int register, int size) {
        bus.out(0, 4, 0x8000_0000 | slot << 11 | register & ~3);
        return bus.in(4 + (register & 3), size);
    }

    private void configWrite(int register, int size, int value) {
        bus.out(0, 4, 0x8000_0000 | slot << 11 | register & ~3);
        bus.out(4 + (register & 3), size, value);
    }

    private long read(long barOffset, int size) {
        AddressBus.Mapping<MmioDevice> m = mmio.find(WINDOW + barOffset);
        return m.device().read(WINDOW + barOffset - m.base(), size);
    }

    private void write(long barOffset, int size, long value) {
        AddressBus.Mapping<MmioDevice> m = mmio.find(WINDOW + barOffset);
        m.device().write(WINDOW + barOffset - m.base(), size, value);
    }

    /** The virtio vendor capabilities by cfg_type: {bar, offset, length, notify multiplier}. */
    private Map<Integer, int[]> virtioCapabilities() {
        Map<Integer, int[]> caps = new HashMap<>();
        for (int at = configRead(0x34, 1); at != 0; at = configRead(at + 1, 1)) {
            if (configRead(at, 1) == 0x09) {
                int type = configRead(at + 3, 1);
                caps.put(type, new int[] {configRead(at + 4, 1), configRead(at + 8, 4), configRead(at + 12, 4),
                        configRead(at + 2, 1) >= 20 ? configRead(at + 16, 4) : 0});
            }
        }
        return caps;
    }

    private int msixCapability() {
        for (int at = configRead(0x34, 1); at != 0; at = configRead(at + 1, 1)) {
            if (configRead(at, 1) == 0x11) {
                return at;
            }
        }
        throw new AssertionError("no MSI-X capability");
    }

    @Test
    void identifiesAsAModernVirtioFunctionWithItsStructuresInOneBar() {
        assertThat(configRead(0, 4)).isEqualTo((0x1040 + EchoDevice.TYPE) << 16 | 0x1af4);
        assertThat(configRead(0x08, 1)).as("revision 1: modern only").isEqualTo(1);
        assertThat(configRead(0x2e, 2)).as("subsystem ID").isGreaterThanOrEqualTo(0x40);
        assertThat(configRead(0x10, 4)).as("64-bit memory BAR 0").isEqualTo((int) WINDOW | 0b100);
        Map<Integer, int[]> caps = virtioCapabilities();
        assertThat(caps).containsOnlyKeys(1, 2, 3); // the echo device has no device-specific configuration
        assertThat(caps.get(1)).containsExactly(0, VirtioPciDevice.COMMON, VirtioPciDevice.COMMON_SIZE, 0);
        assertThat(caps.get(2)).containsExactly(0, VirtioPciDevice.NOTIFY, 8, 4);
        assertThat(caps.get(3)).containsExactly(0, VirtioPciDevice.ISR, 1, 0);
        int msix = msixCapability();
        assertThat(configRead(msix + 2, 2) & 0x7ff).as("a vector per queue plus configuration").isEqualTo(2);
        assertThat(bindings).as("both queues' notify addresses bound").containsOnly(
                Map.entry(Long.toHexString(WINDOW + 0x3000), 0), Map.entry(Long.toHexString(WINDOW + 0x3004), 1));
    }

    @Test
    void aDriverInitializesTheDeviceAndGetsMsixInterruptsForUsedBuffers() {
        write(0x14, 1, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER);
        write(0x00, 4, 1);
        assertThat(read(0x04, 4) & 1).as("VIRTIO_F_VERSION_1, bit 32").isEqualTo(1);
        write(0x08, 4, 0);
        write(0x0c, 4, 0);
        write(0x08, 4, 1);
        write(0x0c, 4, 1);
        write(0x14, 1, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK);
        assertThat(read(0x14, 1) & VirtioDevice.FEATURES_OK).isNotZero();
        assertThat(read(0x12, 2)).as("num_queues").isEqualTo(2);
        assertThat(read(0x15, 1)).as("config_generation: the configuration space never changes").isZero();
        write(0x10, 2, 0);
        assertThat(read(0x10, 2)).isZero();

        VirtioTestDriver driver = new VirtioTestDriver(echo, memory, QUEUE_SIZE, q -> write(VirtioPciDevice.NOTIFY + 4L * q, 2, q));
        for (int q = 0; q < 2; q++) {
            write(0x16, 2, q);
            assertThat(read(0x18, 2)).as("queue_size starts at the maximum").isEqualTo(64);
            write(0x18, 2, QUEUE_SIZE);
            write(0x1a, 2, q + 1);
            assertThat(read(0x1a, 2)).isEqualTo(q + 1);
            write(0x20, 4, driver.descTable(q));
            write(0x24, 4, 0);
            write(0x28, 8, driver.availRing(q));
            write(0x30, 4, driver.usedRing(q));
            write(0x34, 4, 0);
            assertThat(read(0x28, 4)).isEqualTo(driver.availRing(q));
            assertThat(read(0x1e, 2)).as("queue_notify_off").isEqualTo(q);
            write(0x1c, 2, 1);
        }
        int msix = msixCapability();
        configWrite(msix + 2, 2, 1 << 15); // MSI-X enable
        for (int v = 0; v < 3; v++) {
            write(VirtioPciDevice.MSIX_TABLE + 16L * v, 8, 0xfee0_0000L);
            write(VirtioPciDevice.MSIX_TABLE + 16L * v + 8, 4, 0x40 + v);
            write(VirtioPciDevice.MSIX_TABLE + 16L * v + 12, 4, 0);
        }
        write(0x14, 1, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK | VirtioDevice.DRIVER_OK);

        byte[] message = "through the PCI transport".getBytes(StandardCharsets.US_ASCII);
        long in = driver.allocate(message);
        long out = driver.allocate(message.length);
        int head = driver.submit(1, Buffer.readable(in, message.length), Buffer.writable(out, message.length));
        VirtioTestDriver.Used used = driver.awaitUsed(1);
        assertThat(used.id()).isEqualTo(head);
        assertThat(driver.read(out, message.length)).isEqualTo(message);
        VirtioTestDriver.await(() -> events(2).contains("signal"), "queue 1's vector 2 to be signalled");
        assertThat(events(2)).containsExactly("program fee00000/66", "signal");
        assertThat(events(1)).isEmpty();
        assertThat(read(VirtioPciDevice.ISR, 1)).as("ISR: queue interrupt").isEqualTo(1);
        assertThat(read(VirtioPciDevice.ISR, 1)).as("reading the ISR clears it").isZero();

        write(0x14, 1, 0);
        assertThat(read(0x14, 1)).isZero();
        write(0x16, 2, 1);
        assertThat(read(0x1a, 2)).as("reset forgets the queue's vector").isEqualTo(VirtioPciDevice.NO_VECTOR);
        assertThat(read(0x1c, 2)).isZero();
    }

    private List<String> events(int vector) {
        List<String> events = msi.get(vector);
        synchronized (events) {
            return List.copyOf(events);
        }
    }

    @Test
    void aConfigurationChangeSignalsTheConfigurationVectorOnceTheDriverRuns() {
        int msix = msixCapability();
        configWrite(msix + 2, 2, 1 << 15); // MSI-X enable
        write(VirtioPciDevice.MSIX_TABLE, 8, 0xfee0_0000L);
        write(VirtioPciDevice.MSIX_TABLE + 8, 4, 0x40);
        write(VirtioPciDevice.MSIX_TABLE + 12, 4, 0);
        write(0x10, 2, 0); // msix_config: vector 0
        echo.changeConfig();
        assertThat(events(0)).as("no interrupt before DRIVER_OK").isEmpty();
        assertThat(read(VirtioPciDevice.ISR, 1)).isZero();

        write(0x14, 1, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER);
        write(0x08, 4, 1);
        write(0x0c, 4, 1); // VIRTIO_F_VERSION_1
        write(0x14, 1, VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK | VirtioDevice.DRIVER_OK);
        echo.changeConfig();
        assertThat(events(0)).containsExactly("program fee00000/64", "signal");
        assertThat(read(VirtioPciDevice.ISR, 1)).as("ISR: configuration change").isEqualTo(2);
    }

    @Test
    void vectorsTheTableDoesNotHaveReadBackAsNoVector() {
        write(0x10, 2, 3);
        assertThat(read(0x10, 2)).isEqualTo(VirtioPciDevice.NO_VECTOR);
        write(0x16, 2, 0);
        write(0x1a, 2, 0x1234);
        assertThat(read(0x1a, 2)).isEqualTo(VirtioPciDevice.NO_VECTOR);
    }

    @Test
    void aQueueSelectPastTheLastQueueReadsZeroAndIgnoresWrites() {
        write(0x16, 2, 2);
        assertThat(read(0x18, 2)).isZero();
        write(0x18, 2, 8);
        write(0x1c, 2, 1);
        assertThat(read(0x1c, 2)).isZero();
        assertThat(echo.queue(0).size()).isEqualTo(64);
        assertThat(echo.queue(1).size()).isEqualTo(64);
        assertThat(read(0x100, 4)).as("past the common structure").isZero();
    }

    @Test
    void aNotifyWriteThatReachesTheTransportKicksTheQueue() throws Exception {
        write(VirtioPciDevice.NOTIFY + 4, 4, 1); // a 4-byte write no 2-byte ioeventfd would take
        assertThat(echo.notifyEvent(1).read()).isEqualTo(1);
        write(VirtioPciDevice.NOTIFY + 4 * 7, 2, 7); // no such queue: ignored
    }

    @Test
    void movingTheBarMovesTheNotifyBindings() {
        configWrite(0x04, 2, 0);
        assertThat(bindings).isEmpty();
        configWrite(0x10, 4, (int) (WINDOW + 0x10_0000));
        configWrite(0x04, 2, 0b110);
        assertThat(bindings).containsOnlyKeys(Long.toHexString(WINDOW + 0x10_3000), Long.toHexString(WINDOW + 0x10_3004));
    }
}
