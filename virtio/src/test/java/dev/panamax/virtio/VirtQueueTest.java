package dev.panamax.virtio;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.CpuSet;
import dev.panamax.sys.HostThreads;
import dev.panamax.sys.MappedMemory;
import dev.panamax.sys.ProcSelf;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.vm.GuestMemory;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class VirtQueueTest {
    static final int SIZE = 16;
    static final long MEMORY = 1 << 20;

    GuestMemory memory;
    EchoDevice device;
    VirtioTestDriver driver;

    @BeforeEach
    void setUp() {
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(MEMORY));
        device = new EchoDevice(2, 256);
        driver = new VirtioTestDriver(device, memory);
    }

    @AfterEach
    void tearDown() {
        device.close();
        memory.close();
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    /** Submits "hello, virtio" split over two readable buffers, expects it back in two writable ones. */
    void roundTrip(int q, boolean indirect) {
        long a = driver.allocate(bytes("hello, "));
        long b = driver.allocate(bytes("virtio"));
        long out1 = driver.allocate(4);
        long out2 = driver.allocate(64);
        VirtioTestDriver.Buffer[] chain = {readable(a, 7), readable(b, 6), writable(out1, 4), writable(out2, 64)};
        int head = indirect ? driver.submitIndirect(q, chain) : driver.submit(q, chain);
        Used used = driver.awaitUsed(q);
        assertThat(used).isEqualTo(new Used(head, 13));
        assertThat(new String(driver.read(out1, 4), StandardCharsets.US_ASCII)
                + new String(driver.read(out2, 9), StandardCharsets.US_ASCII)).isEqualTo("hello, virtio");
    }

    @Test
    void directAndIndirectChainsComeBackOnTheUsedRingWithTheirData() throws InterruptedException {
        driver.start(SIZE);
        for (int i = 0; i < 3 * SIZE; i++) { // wraps the rings several times
            roundTrip(i % 2, i % 3 == 0);
        }
        driver.interrupts().awaitQueue(0, 1, VirtioTestDriver.TIMEOUT);
        assertThat(device.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();
        assertThat(driver.interrupts().configCount()).isZero();
    }

    @Test
    void manyChainsMadeAvailableAtOnceAreAllUsed() {
        driver.start(SIZE);
        long in = driver.allocate(bytes("x"));
        long[] out = new long[SIZE / 2]; // two descriptors each: the whole table
        for (int i = 0; i < out.length; i++) {
            out[i] = driver.allocate(1);
            int head = driver.takeDescriptors(0, 2);
            driver.writeDescriptor(driver.descTable(0), head, in, 1, VirtQueue.DESC_F_NEXT, head + 1);
            driver.writeDescriptor(driver.descTable(0), head + 1, out[i], 1, VirtQueue.DESC_F_WRITE, 0);
            driver.publish(0, head);
        }
        driver.notify(0);
        for (int i = 0; i < out.length; i++) {
            assertThat(driver.awaitUsed(0)).isEqualTo(new Used(2 * i, 1));
        }
        for (long address : out) {
            assertThat(driver.read(address, 1)).isEqualTo(bytes("x"));
        }
    }

    /** A store of the used index: its value, and the used entries before it as the ring held them at that moment. */
    record IndexStore(int usedIdx, List<Used> entries) {}

    @Test
    void chainsUsedTogetherArePublishedWithOneIndexStoreAfterAllTheirEntries() {
        QueueSettings settings = new QueueSettings(SIZE);
        settings.setSize(SIZE);
        settings.setDescTable(0x1000);
        settings.setAvailRing(0x2000);
        settings.setUsedRing(0x3000);
        List<IndexStore> stores = new ArrayList<>();
        VirtQueue queue = VirtQueue.create(0, settings, SIZE, memory, false, false, (usedRing, usedIdx) -> {
            List<Used> entries = new ArrayList<>();
            for (int i = 0; i < usedIdx; i++) { // no wrap: fewer than SIZE entries
                entries.add(new Used(memory.readInt(0x3004 + 8L * i), memory.readInt(0x3008 + 8L * i)));
            }
            stores.add(new IndexStore(Short.toUnsignedInt(usedIdx), entries));
            VirtQueue.RELEASE_STORE.store(usedRing, usedIdx);
        });
        assertThat(stores).as("create resets the used index").containsExactly(new IndexStore(0, List.of()));
        stores.clear();

        queue.addUsed(new int[] {3, 5, 7}, new int[] {10, 20, 30}, 2);
        assertThat(stores).as("one store, after both entries").containsExactly(new IndexStore(2, List.of(new Used(3, 10), new Used(5, 20))));
        queue.addUsed(9, 40);
        assertThat(stores).last().isEqualTo(new IndexStore(3, List.of(new Used(3, 10), new Used(5, 20), new Used(9, 40))));
        assertThat(stores).hasSize(2);
        assertThat(Short.toUnsignedInt(memory.readShort(0x3002))).as("the stores reach the ring").isEqualTo(3);
    }

    @Test
    void theReportOnAHungGuestCountsEntriesNotTakenAndTakenButNotUsed() {
        QueueSettings settings = new QueueSettings(SIZE);
        settings.setSize(SIZE);
        settings.setDescTable(0x1000);
        settings.setAvailRing(0x2000);
        settings.setUsedRing(0x3000);
        VirtQueue queue = VirtQueue.create(0, settings, SIZE, memory, false, false);
        for (int i = 0; i < 3; i++) { // three one-descriptor chains made available
            memory.writeLong(0x1000 + 16L * i, 0x8000 + 64L * i);
            memory.writeInt(0x1008 + 16L * i, 64);
            memory.writeShort(0x2004 + 2L * i, (short) i);
        }
        memory.writeShort(0x2002, (short) 3);
        DescriptorChain chain = queue.newChain();
        assertThat(queue.pop(chain)).isTrue();
        queue.addUsed(chain.head(), 0);
        assertThat(queue.pop(chain)).isTrue();

        assertThat(queue.describe()).isEqualTo("queue 0: 1 available and not taken, 1 taken and not used (available 3, taken 2, used 1,"
                + " interrupts on)");
        memory.writeShort(0x2000, (short) VirtQueue.AVAIL_F_NO_INTERRUPT);
        assertThat(queue.describe()).endsWith(", interrupts off)");
    }

    @Test
    void withEventIdxTheDevicePublishesAvailEventBeforeSleeping() {
        driver.start(SIZE);
        roundTrip(0, false);
        roundTrip(0, false);
        VirtioTestDriver.await(() -> driver.availEvent(0) == 2, "avail_event 2");
    }

    @Test
    void eventIdxSuppressesInterruptsUntilTheUsedIndexPassesUsedEvent() throws InterruptedException {
        driver.start(SIZE);
        roundTrip(0, false); // used_event is 0: the first entry interrupts
        driver.interrupts().awaitQueue(0, 1, VirtioTestDriver.TIMEOUT);
        driver.setUsedEvent(0, 100);
        roundTrip(0, false);
        roundTrip(0, false);
        roundTrip(0, false);
        driver.setUsedEvent(0, 4); // "interrupt once entry 4 is used": the used index goes 4 -> 5
        roundTrip(0, false);
        driver.interrupts().awaitQueue(0, 2, VirtioTestDriver.TIMEOUT);
        // One thread raises them in order, so a wrongly raised earlier interrupt would be counted by now.
        assertThat(driver.interrupts().queueCount(0)).isEqualTo(2);
    }

    @Test
    void withoutEventIdxNoInterruptFlagSuppressesInterrupts() throws InterruptedException {
        driver.start(device.deviceFeatures() & ~(1L << VirtioDevice.VIRTIO_F_RING_EVENT_IDX), SIZE);
        driver.setAvailFlags(0, VirtQueue.AVAIL_F_NO_INTERRUPT);
        roundTrip(0, false);
        roundTrip(0, true);
        driver.setAvailFlags(0, 0);
        roundTrip(0, false);
        driver.interrupts().awaitQueue(0, 1, VirtioTestDriver.TIMEOUT);
        assertThat(driver.interrupts().queueCount(0)).isEqualTo(1);
    }

    // A malformed chain: how to write it (after start), and what the failure reason must say.
    record Malformed(String name, Consumer<VirtioTestDriver> submit, String reason) {
        @Override
        public String toString() {
            return name;
        }
    }

    static final int F_NEXT = VirtQueue.DESC_F_NEXT;
    static final int F_WRITE = VirtQueue.DESC_F_WRITE;
    static final int F_INDIRECT = VirtQueue.DESC_F_INDIRECT;

    static Stream<Malformed> malformedChains() {
        return Stream.of(
                new Malformed("loop", d -> {
                    long buf = d.allocate(16);
                    d.writeDescriptor(d.descTable(0), 0, buf, 16, F_NEXT, 1);
                    d.writeDescriptor(d.descTable(0), 1, buf, 16, F_NEXT, 0);
                    publish(d, 0);
                }, "longer than the queue size"),
                new Malformed("self loop", d -> {
                    d.writeDescriptor(d.descTable(0), 3, d.allocate(16), 16, F_NEXT | F_WRITE, 3);
                    publish(d, 3);
                }, "longer than the queue size"),
                new Malformed("address outside guest memory", d -> {
                    d.writeDescriptor(d.descTable(0), 0, MEMORY - 8, 16, 0, 0);
                    publish(d, 0);
                }, "not inside guest memory"),
                new Malformed("address that overflows", d -> {
                    d.writeDescriptor(d.descTable(0), 0, Long.MAX_VALUE - 4, 0xffff_0000L, 0, 0);
                    publish(d, 0);
                }, "not inside guest memory"),
                new Malformed("zero-length descriptor", d -> {
                    d.writeDescriptor(d.descTable(0), 0, d.allocate(16), 0, 0, 0);
                    publish(d, 0);
                }, "zero-length"),
                new Malformed("head index past the queue size", d -> publish(d, SIZE), "past the end of its queue"),
                new Malformed("next index past the queue size", d -> {
                    d.writeDescriptor(d.descTable(0), 0, d.allocate(16), 16, F_NEXT, 0xffff);
                    publish(d, 0);
                }, "descriptor index 65535 is past the end"),
                new Malformed("available index too far ahead", d -> {
                    d.setAvailIdx(0, SIZE + 1);
                    d.notify(0);
                }, "more than the queue size"),
                new Malformed("huge indirect table", d -> {
                    d.writeDescriptor(d.descTable(0), 0, d.allocate(16 * (SIZE + 1)), 16L * (SIZE + 1), F_INDIRECT, 0);
                    publish(d, 0);
                }, "indirect table of"),
                new Malformed("indirect table of 4 GiB - 16", d -> {
                    d.writeDescriptor(d.descTable(0), 0, 0, 0xffff_fff0L, F_INDIRECT, 0);
                    publish(d, 0);
                }, "indirect table of"),
                new Malformed("empty indirect table", d -> {
                    d.writeDescriptor(d.descTable(0), 0, d.allocate(16), 0, F_INDIRECT, 0);
                    publish(d, 0);
                }, "indirect table of 0 bytes"),
                new Malformed("indirect table not a multiple of 16", d -> {
                    d.writeDescriptor(d.descTable(0), 0, d.allocate(32), 24, F_INDIRECT, 0);
                    publish(d, 0);
                }, "indirect table of 24 bytes"),
                new Malformed("indirect table outside guest memory", d -> {
                    d.writeDescriptor(d.descTable(0), 0, MEMORY - 16, 32, F_INDIRECT, 0);
                    publish(d, 0);
                }, "not inside guest memory"),
                new Malformed("nested indirect table", d -> {
                    long inner = d.allocate(16);
                    d.writeDescriptor(inner, 0, d.allocate(16), 16, 0, 0);
                    long outer = d.allocate(16);
                    d.writeDescriptor(outer, 0, inner, 16, F_INDIRECT, 0);
                    d.writeDescriptor(d.descTable(0), 0, outer, 16, F_INDIRECT, 0);
                    publish(d, 0);
                }, "indirect descriptor inside an indirect table"),
                new Malformed("indirect with NEXT", d -> {
                    long table = d.allocate(16);
                    d.writeDescriptor(table, 0, d.allocate(16), 16, 0, 0);
                    d.writeDescriptor(d.descTable(0), 0, table, 16, F_INDIRECT | F_NEXT, 1);
                    d.writeDescriptor(d.descTable(0), 1, d.allocate(16), 16, F_WRITE, 0);
                    publish(d, 0);
                }, "also has the NEXT flag"),
                new Malformed("loop inside an indirect table", d -> {
                    long table = d.allocate(32);
                    long buf = d.allocate(16);
                    d.writeDescriptor(table, 0, buf, 16, F_NEXT, 1);
                    d.writeDescriptor(table, 1, buf, 16, F_NEXT, 0);
                    d.writeDescriptor(d.descTable(0), 0, table, 32, F_INDIRECT, 0);
                    publish(d, 0);
                }, "longer than the queue size"),
                new Malformed("next index past an indirect table", d -> {
                    long table = d.allocate(32);
                    d.writeDescriptor(table, 0, d.allocate(16), 16, F_NEXT, 2);
                    d.writeDescriptor(d.descTable(0), 0, table, 32, F_INDIRECT, 0);
                    publish(d, 0);
                }, "past the end of its indirect table"),
                new Malformed("readable after writable", d -> {
                    long buf = d.allocate(16);
                    d.writeDescriptor(d.descTable(0), 0, buf, 16, F_WRITE | F_NEXT, 1);
                    d.writeDescriptor(d.descTable(0), 1, buf, 16, 0, 0);
                    publish(d, 0);
                }, "device-readable descriptor after a device-writable one"));
    }

    static void publish(VirtioTestDriver d, int head) {
        d.publish(0, head);
        d.notify(0);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("malformedChains")
    void aMalformedChainSetsDeviceNeedsResetAndAResetRecovers(Malformed malformed) throws InterruptedException {
        driver.start(SIZE);
        malformed.submit().accept(driver);
        String reason = driver.awaitFailure();
        assertThat(reason).contains(malformed.reason());
        assertThat(driver.interrupts().configCount()).isEqualTo(1);
        assertThat(driver.usedIdx(0)).as("nothing was used").isZero();

        driver.reset();
        assertThat(device.failure()).isNull();
        driver.start(SIZE);
        roundTrip(0, true);
        roundTrip(1, false);
        assertThat(device.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();
    }

    @Test
    void indirectDescriptorsWithoutTheFeatureFailTheDevice() {
        driver.start(device.deviceFeatures() & ~(1L << VirtioDevice.VIRTIO_F_RING_INDIRECT_DESC), SIZE);
        long table = driver.allocate(16);
        driver.writeDescriptor(table, 0, driver.allocate(16), 16, 0, 0);
        driver.writeDescriptor(driver.descTable(0), 0, table, 16, F_INDIRECT, 0);
        publish(driver, 0);
        assertThat(driver.awaitFailure()).contains("VIRTIO_F_RING_INDIRECT_DESC was not negotiated");
    }

    @Test
    void aChainLongerThan4GiBFailsTheDevice() {
        try (GuestMemory big = new GuestMemory(); EchoDevice echo = new EchoDevice(1, 256)) {
            big.addRegion(0, MappedMemory.anonymous(1 << 20));
            big.addRegion(1L << 32, MappedMemory.anonymous(3L << 30)); // untouched pages cost nothing
            VirtioTestDriver d = new VirtioTestDriver(echo, big);
            d.start(SIZE);
            d.writeDescriptor(d.descTable(0), 0, 1L << 32, 3L << 30, F_NEXT, 1);
            d.writeDescriptor(d.descTable(0), 1, 1L << 32, 3L << 30, F_WRITE, 0);
            d.publish(0, 0);
            d.notify(0);
            assertThat(d.awaitFailure()).contains("more than 2^32-1");
        }
    }

    static Stream<Arguments> badQueueSettings() {
        return Stream.<Arguments>of(
                Arguments.of("size not a power of two", (Consumer<QueueSettings>) s -> s.setSize(12), "not a power of two"),
                Arguments.of("size above the maximum", (Consumer<QueueSettings>) s -> s.setSize(512), "not a power of two from 1 to 256"),
                Arguments.of("size 0", (Consumer<QueueSettings>) s -> s.setSize(0), "not a power of two"),
                Arguments.of("misaligned descriptor table", (Consumer<QueueSettings>) s -> s.setDescTable(0x1008), "not 16-byte aligned"),
                Arguments.of("misaligned used ring", (Consumer<QueueSettings>) s -> s.setUsedRing(0x3002), "not 4-byte aligned"),
                Arguments.of("available ring outside memory", (Consumer<QueueSettings>) s -> s.setAvailRing(MEMORY - 8), "not inside guest memory"),
                Arguments.of("used ring at a negative address", (Consumer<QueueSettings>) s -> s.setUsedRing(-4096), "not inside guest memory"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badQueueSettings")
    void badQueueSettingsAtDriverOkSetDeviceNeedsReset(String name, Consumer<QueueSettings> change, String reason) {
        assertThat(driver.negotiate(device.deviceFeatures())).isTrue();
        QueueSettings s = device.queue(0);
        s.setSize(SIZE);
        s.setDescTable(driver.descTable(0));
        s.setAvailRing(driver.availRing(0));
        s.setUsedRing(driver.usedRing(0));
        s.setReady(true);
        change.accept(s);
        device.setStatus(device.status() | VirtioDevice.DRIVER_OK);
        assertThat(device.status() & VirtioDevice.DEVICE_NEEDS_RESET).isNotZero();
        assertThat(device.failure()).contains("queue 0").contains(reason);
        assertThat(driver.interrupts().configCount()).isEqualTo(1);
        driver.reset();
        driver.start(SIZE);
        roundTrip(0, false);
    }

    @Test
    void featuresOkIsRefusedWithoutVersion1OrWithFeaturesNotOffered() {
        assertThat(driver.negotiate(device.deviceFeatures() & ~(1L << VirtioDevice.VIRTIO_F_VERSION_1))).isFalse();
        driver.reset();
        assertThat(driver.negotiate(device.deviceFeatures() | 1L << 40)).isFalse();
        driver.reset();
        assertThat(driver.negotiate(1L << VirtioDevice.VIRTIO_F_VERSION_1)).isTrue();
        device.setDriverFeatures(device.deviceFeatures()); // too late: negotiation is over
        assertThat(device.driverFeatures()).isEqualTo(1L << VirtioDevice.VIRTIO_F_VERSION_1);
    }

    @Test
    void deviceOffersTheRingFeaturesAndChecksQueueIndices() {
        assertThat(device.deviceFeatures()).isEqualTo(1L << 32 | 1L << 28 | 1L << 29);
        assertThat(device.queue(1).size()).isEqualTo(256);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> device.queue(2)).isInstanceOf(IndexOutOfBoundsException.class);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> device.notifyEvent(-1)).isInstanceOf(IndexOutOfBoundsException.class);
    }

    @Test
    void ioThreadsAreNamedAfterTheDeviceAndStopOnReset() {
        driver.start(SIZE);
        assertThat(Thread.getAllStackTraces().keySet()).extracting(Thread::getName).contains("echo-test-q0", "echo-test-q1");
        driver.reset();
        assertThat(Thread.getAllStackTraces().keySet()).extracting(Thread::getName).doesNotContain("echo-test-q0", "echo-test-q1");
    }

    /** An echo device whose queues record the Linux thread id that served them. */
    private static final class ThreadRecordingEcho extends VirtioDevice {
        final AtomicIntegerArray threadIds = new AtomicIntegerArray(2);

        ThreadRecordingEcho() {
            super("echo (test)", EchoDevice.TYPE, 0, 2, SIZE, 0);
        }

        @Override
        protected int handle(VirtQueue queue, DescriptorChain chain) {
            threadIds.set(queue.index(), HostThreads.currentThreadId());
            int n = (int) Math.min(chain.readableLength(), chain.writableLength());
            byte[] data = new byte[n];
            chain.read(0, data, 0, n);
            chain.write(0, data, 0, n);
            return n;
        }
    }

    @Test
    void ioThreadsPinThemselvesToTheDevicesCpusBeforeServing() throws Exception {
        int last = CpuSet.online().stream().max().orElseThrow();
        ThreadRecordingEcho echo = new ThreadRecordingEcho();
        try {
            echo.pinIoThreads(CpuSet.of(last));
            VirtioTestDriver echoDriver = new VirtioTestDriver(echo, memory);
            echoDriver.start(SIZE);

            for (int q = 0; q < 2; q++) {
                long in = echoDriver.allocate(4);
                echoDriver.submit(q, readable(echoDriver.allocate(bytes("ping")), 4), writable(in, 4));
                echoDriver.awaitUsed(q);
                assertThat(ProcSelf.cpusAllowedList(echo.threadIds.get(q))).as("queue %d's I/O thread", q).isEqualTo(String.valueOf(last));
            }
            assertThat(echo.ioCpus()).isEqualTo(CpuSet.of(last));
        } finally {
            echo.close();
        }
    }

    @Test
    void anIoThreadThatCannotBePinnedPutsTheDeviceInTheErrorState() {
        device.pinIoThreads(CpuSet.of(CpuSet.MAX_CPUS - 1)); // no host has it: the kernel refuses
        driver.start(SIZE);

        assertThat(driver.awaitFailure()).contains("its I/O thread could not be pinned to host CPUs 8191");
        assertThat(device.status() & VirtioDevice.DEVICE_NEEDS_RESET).isNotZero();
    }
}
