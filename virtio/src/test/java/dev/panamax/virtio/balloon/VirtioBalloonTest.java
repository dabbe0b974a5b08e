package dev.panamax.virtio.balloon;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.vm.DirtyPages;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class VirtioBalloonTest {
    static final int QUEUE_SIZE = 64;
    /** Guest RAM: 8 MiB at 0; the test driver's rings and buffers live below 1 MiB. */
    static final long RAM = 8L << 20;
    /** The pages the tests give to the balloon: from 4 MiB up, clear of the rings and buffers. */
    static final long BALLOON_BASE = 4L << 20;

    GuestMemory memory;
    VirtioBalloon balloon;
    VirtioTestDriver driver;

    @BeforeEach
    void setUp() {
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(RAM));
    }

    @AfterEach
    void tearDown() {
        if (balloon != null) {
            balloon.close();
        }
        memory.close();
    }

    void start(int targetPages, boolean deflateOnOom, int statsSeconds) {
        balloon = new VirtioBalloon("balloon0", targetPages, deflateOnOom, statsSeconds);
        driver = new VirtioTestDriver(balloon, memory);
        driver.start(QUEUE_SIZE);
    }

    /** A buffer holding {@code pfns} as the driver lists them: little-endian 32-bit numbers. */
    long pageList(long... pfns) {
        ByteBuffer b = ByteBuffer.allocate(4 * pfns.length).order(ByteOrder.LITTLE_ENDIAN);
        for (long pfn : pfns) {
            b.putInt((int) pfn);
        }
        return driver.allocate(b.array());
    }

    static long[] pfns(long firstAddress, int count) {
        return LongStream.range(0, count).map(i -> (firstAddress >> 12) + i).toArray();
    }

    @Test
    void offersTheOptionsItWasMadeWithAndShowsTheTargetInItsConfiguration() {
        balloon = new VirtioBalloon("b", 300, true, 0);
        assertThat(balloon.deviceType()).isEqualTo(5);
        assertThat(balloon.queueCount()).isEqualTo(2);
        assertThat(balloon.deviceFeatures() & 0b111).isEqualTo(1L << VirtioBalloon.VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
        assertThat(balloon.readConfig(0, 4)).isEqualTo(300);
        assertThat(balloon.readConfig(4, 4)).isZero();
        balloon.close();

        balloon = new VirtioBalloon("b", 0, false, 5);
        assertThat(balloon.queueCount()).isEqualTo(3);
        assertThat(balloon.deviceFeatures() & 0b111).isEqualTo(1L << VirtioBalloon.VIRTIO_BALLOON_F_STATS_VQ);
        assertThatThrownBy(() -> new VirtioBalloon("b", -1, false, 0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new VirtioBalloon("b", 0, false, -1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void aNewTargetIsInTheConfigurationWithAConfigurationInterruptAndTheDriverWritesActual() {
        start(0, false, 0);
        int before = driver.interrupts().configCount();

        balloon.setTargetPages(1024);

        assertThat(balloon.readConfig(VirtioBalloon.NUM_PAGES, 4)).isEqualTo(1024);
        assertThat(balloon.targetPages()).isEqualTo(1024);
        assertThat(driver.interrupts().configCount()).isEqualTo(before + 1);

        balloon.writeConfig(VirtioBalloon.ACTUAL, 4, 1000);
        balloon.writeConfig(VirtioBalloon.NUM_PAGES, 4, 7); // not the driver's to write

        assertThat(balloon.actualPages()).isEqualTo(1000);
        assertThat(balloon.readConfig(VirtioBalloon.ACTUAL, 4)).isEqualTo(1000);
        assertThat(balloon.targetPages()).isEqualTo(1024);
    }

    @Test
    void inflatedPagesAreGivenBackToTheHostAndDeflatedOnesAreTheGuestsAgain() {
        start(512, false, 0);
        for (long a = BALLOON_BASE; a < BALLOON_BASE + (2L << 20); a += 4096) {
            memory.writeLong(a, 0x5555_5555_5555_5555L);
        }
        memory.writeLong(BALLOON_BASE + (2L << 20), 0x77);
        memory.startTracking();
        long[] inflated = pfns(BALLOON_BASE, 512);
        // Not in order, and split over two descriptors, as a driver may send them.
        long[] shuffled = new long[512];
        for (int i = 0; i < 512; i++) {
            shuffled[i] = inflated[(i * 7) % 512];
        }
        long first = pageList(java.util.Arrays.copyOf(shuffled, 100));
        long rest = pageList(java.util.Arrays.copyOfRange(shuffled, 100, 512));

        driver.submit(VirtioBalloon.INFLATE_QUEUE, readable(first, 400), readable(rest, 412 * 4));
        Used used = driver.awaitUsed(VirtioBalloon.INFLATE_QUEUE);

        assertThat(used.length()).isZero();
        assertThat(balloon.inflatedPages()).isEqualTo(512);
        assertThat(memory.readLong(BALLOON_BASE)).as("a released page reads as zeros").isZero();
        assertThat(memory.readLong(BALLOON_BASE + (2L << 20) - 4096)).isZero();
        assertThat(memory.readLong(BALLOON_BASE + (2L << 20))).as("the page after the balloon's").isEqualTo(0x77);
        DirtyPages written = memory.takeWrittenPages();
        assertThat(written.ranges().getFirst().isDirty(BALLOON_BASE >> 12)).as("a released page counts as written for diff snapshots")
                .isTrue();

        driver.submit(VirtioBalloon.DEFLATE_QUEUE, readable(pageList(pfns(BALLOON_BASE, 16)), 64));
        driver.awaitUsed(VirtioBalloon.DEFLATE_QUEUE);

        assertThat(balloon.deflatedPages()).isEqualTo(16);
        memory.writeLong(BALLOON_BASE, 42);
        assertThat(memory.readLong(BALLOON_BASE)).as("a deflated page is usable again").isEqualTo(42);
        assertThat(balloon.failure()).isNull();
    }

    @Test
    void aPageOutsideGuestMemoryFailsTheDeviceAndNoPageAfterItIsReleased() {
        start(0, false, 0);
        memory.writeLong(BALLOON_BASE + 4096, 9);

        driver.submit(VirtioBalloon.INFLATE_QUEUE, readable(pageList(RAM >> 12, (BALLOON_BASE >> 12) + 1), 8));

        assertThat(driver.awaitFailure()).contains("inflate queue").contains("page frame 0x800 (guest address 0x800000) is outside guest memory");
        assertThat(memory.readLong(BALLOON_BASE + 4096)).isEqualTo(9);
        assertThat(balloon.inflatedPages()).isZero();
    }

    @Test
    void theLargestPageFrameNumberIsRefusedWithoutOverflow() {
        start(0, false, 0);
        driver.submit(VirtioBalloon.DEFLATE_QUEUE, readable(pageList(0xffff_ffffL), 4));
        assertThat(driver.awaitFailure()).contains("deflate queue").contains("page frame 0xffffffff (guest address 0xffffffff000)");
    }

    @Test
    void aPageListThatIsNotWhole32BitNumbersFailsTheDevice() {
        start(0, false, 0);
        driver.submit(VirtioBalloon.INFLATE_QUEUE, readable(pageList(BALLOON_BASE >> 12, 0), 6));
        assertThat(driver.awaitFailure()).contains("a page list of 6 bytes");
        assertThat(balloon.inflatedPages()).isZero();
    }

    @Test
    void aRequestWithADeviceWritableBufferFailsTheDevice() {
        start(0, false, 0);
        driver.submit(VirtioBalloon.INFLATE_QUEUE, readable(pageList(BALLOON_BASE >> 12), 4), writable(driver.allocate(16), 16));
        assertThat(driver.awaitFailure()).contains("device-writable");
    }

    @Test
    void aPageListAsLongAsGuestMemoryIsReadAChunkAtATime() {
        start(0, false, 0);
        // 256 KiB of page list: 65536 numbers, all naming one valid page, read in bounded chunks.
        long list = BALLOON_BASE + (2L << 20);
        for (long a = list; a < list + (256L << 10); a += 4) {
            memory.writeInt(a, (int) (BALLOON_BASE >> 12));
        }

        driver.submit(VirtioBalloon.INFLATE_QUEUE, readable(list, 256L << 10));
        driver.awaitUsed(VirtioBalloon.INFLATE_QUEUE);

        assertThat(balloon.inflatedPages()).isEqualTo(65536);
        assertThat(balloon.failure()).isNull();
    }

    /** One statistic as the driver writes it: {@code le16 tag, le64 value}. */
    static byte[] stats(long... tagValuePairs) {
        ByteBuffer b = ByteBuffer.allocate(tagValuePairs.length / 2 * 10).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < tagValuePairs.length; i += 2) {
            b.putShort((short) tagValuePairs[i]).putLong(tagValuePairs[i + 1]);
        }
        return b.array();
    }

    @Test
    void statisticsAreReadByFirecrackersNamesAndTheBufferIsGivenBackAfterTheInterval() {
        start(0, false, 1);
        byte[] first = stats(4, 100L << 20, 5, 256L << 20, 6, 200L << 20, 2, 3, 99, 1);
        long buffer = driver.allocate(first);

        int head = driver.submit(VirtioBalloon.STATS_QUEUE, readable(buffer, first.length));

        VirtioTestDriver.await(() -> !balloon.statistics().isEmpty(), "the first statistics");
        assertThat(balloon.statistics()).containsExactly(Map.entry("major_faults", 3L), Map.entry("free_memory", 100L << 20),
                Map.entry("total_memory", 256L << 20), Map.entry("available_memory", 200L << 20));
        // After the interval the buffer comes back, asking for the next report.
        Used used = driver.awaitUsed(VirtioBalloon.STATS_QUEUE);
        assertThat(used.id()).isEqualTo(head);
        assertThat(used.length()).isZero();

        byte[] second = stats(4, 50L << 20);
        driver.submit(VirtioBalloon.STATS_QUEUE, readable(driver.allocate(second), second.length));

        VirtioTestDriver.await(() -> balloon.statistics().get("free_memory") == 50L << 20, "the second statistics");
        assertThat(balloon.statistics()).as("statistics left out keep their values").containsEntry("total_memory", 256L << 20);
    }

    @Test
    void aStatisticsBufferOfPartEntriesOrTooManyFailsTheDevice() {
        start(0, false, 1);
        driver.submit(VirtioBalloon.STATS_QUEUE, readable(driver.allocate(15), 15));
        assertThat(driver.awaitFailure()).contains("stats queue").contains("15 bytes");

        driver.reset();
        driver.start(QUEUE_SIZE);
        int tooMany = (VirtioBalloon.MAX_STATS + 1) * 10;
        driver.submit(VirtioBalloon.STATS_QUEUE, readable(driver.allocate(tooMany), tooMany));
        assertThat(driver.awaitFailure()).contains(tooMany + " bytes");
    }

    @Test
    void theStatisticsIntervalChangesOnlyWhileStatisticsAreOn() {
        start(0, false, 0);
        assertThatThrownBy(() -> balloon.setStatsIntervalSeconds(5)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("cannot be turned on");
        balloon.close();

        start(0, false, 10);
        balloon.setStatsIntervalSeconds(3);
        assertThat(balloon.statsIntervalSeconds()).isEqualTo(3);
        assertThatThrownBy(() -> balloon.setStatsIntervalSeconds(0)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("cannot be turned off");
    }

    @Test
    void aSnapshotKeepsTheTargetActualAndIntervalAndTheHeldStatisticsBufferGoesBackOnTheRing() {
        start(100, true, 30);
        byte[] report = stats(4, 1);
        driver.submit(VirtioBalloon.STATS_QUEUE, readable(driver.allocate(report), report.length));
        VirtioTestDriver.await(() -> !balloon.statistics().isEmpty(), "the statistics");
        balloon.setTargetPages(2048);
        balloon.writeConfig(VirtioBalloon.ACTUAL, 4, 1500);
        balloon.setStatsIntervalSeconds(20);

        balloon.quiesce(); // the held buffer is given back to the ring: nothing is in flight
        StateWriter out = new StateWriter();
        balloon.saveState(out);
        byte[] state = out.toByteArray();
        balloon.resumeWork();

        VirtioBalloon restored = new VirtioBalloon("balloon0", 0, true, 30);
        try {
            restored.connect(memory, new dev.panamax.virtio.CountingInterrupts(3));
            restored.restoreState(new StateReader(state, "the snapshot"));

            assertThat(restored.targetPages()).isEqualTo(2048);
            assertThat(restored.actualPages()).isEqualTo(1500);
            assertThat(restored.statsIntervalSeconds()).isEqualTo(20);
            assertThat(restored.status() & VirtioDevice.DRIVER_OK).isNotZero();
            VirtioTestDriver.await(() -> !restored.statistics().isEmpty(), "the restored device taking the buffer again");
        } finally {
            restored.close();
        }

        VirtioBalloon otherOptions = new VirtioBalloon("balloon0", 0, false, 30);
        try {
            otherOptions.connect(memory, new dev.panamax.virtio.CountingInterrupts(3));
            assertThatThrownBy(() -> otherOptions.restoreState(new StateReader(state, "the snapshot")))
                    .isInstanceOf(StateFormatException.class).hasMessageContaining("deflate_on_oom true");
        } finally {
            otherOptions.close();
        }
    }
}
