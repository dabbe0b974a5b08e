package dev.panamax.virtio.blk;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static dev.panamax.virtio.VirtioTestDriver.await;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.storage.RawImage;
import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.virtio.ratelimit.BucketSpec;
import dev.panamax.virtio.ratelimit.RateLimit;
import dev.panamax.virtio.ratelimit.RateLimiter;
import dev.panamax.vm.GuestMemory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * virtio-blk under a rate limiter on a clock the test moves: while the clock stands still, a refused
 * request cannot pass, so what is parked is known without timing anything.
 */
class VirtioBlkRateLimitTest {
    static final int QUEUE_SIZE = 64;
    static final long MS = 1_000_000;
    static final int SECTOR = 512;

    @TempDir
    Path dir;
    byte[] disk;
    GuestMemory memory;
    VirtioBlk blk;
    VirtioTestDriver driver;
    final AtomicLong clock = new AtomicLong(1_000 * MS);

    /** One read the driver made available: its head and where its data and status land. */
    record Read(int head, long sector, long data, int length, long status) {}

    @BeforeEach
    void setUp() throws IOException {
        disk = new byte[1 << 20];
        new Random(3).nextBytes(disk);
        Files.write(dir.resolve("disk.raw"), disk);
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(4 << 20));
    }

    @AfterEach
    void tearDown() {
        if (blk != null) {
            blk.close();
        }
        memory.close();
    }

    void start(RateLimit limit) throws IOException {
        blk = new VirtioBlk("disk0", RawImage.open(dir.resolve("disk.raw"), true), null, 1, QUEUE_SIZE,
                new RateLimiter(limit, clock::get));
        driver = new VirtioTestDriver(blk, memory);
        driver.start(QUEUE_SIZE);
    }

    /** Makes a read of {@code sectors} sectors from {@code sector} available, without notifying. */
    Read offerRead(long sector, int sectors) {
        long header = driver.allocate(VirtioBlkTest.header(VirtioBlk.T_IN, sector));
        long data = driver.allocate(sectors * SECTOR);
        long status = driver.allocate(new byte[] {(byte) 0xff});
        int head = driver.offer(0, readable(header, 16), writable(data, sectors * SECTOR), writable(status, 1));
        return new Read(head, sector, data, sectors * SECTOR, status);
    }

    /** Waits for the next used entry and checks it is {@code read}'s, answered with the disk's bytes. */
    void expectCompleted(Read read) {
        Used used = driver.awaitUsed(0);
        assertThat(used.id()).as("completions in the order of the ring").isEqualTo(read.head());
        assertThat(driver.read(read.status(), 1)[0]).isEqualTo(VirtioBlk.S_OK);
        int offset = (int) read.sector() * SECTOR;
        assertThat(driver.read(read.data(), read.length())).isEqualTo(Arrays.copyOfRange(disk, offset, offset + read.length()));
    }

    @Test
    void requestsBeyondTheBudgetWaitOnTheRingAndAllCompleteInOrderAfterTheRefill() throws IOException {
        start(new RateLimit(null, new BucketSpec(3, 0, 1000))); // 3 requests a second
        List<Read> reads = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            reads.add(offerRead(i * 8L, 1));
        }
        driver.notify(0);
        await(() -> blk.rateLimiter().throttledEvents() == 1, "the queue to be throttled");
        for (int i = 0; i < 3; i++) {
            expectCompleted(reads.get(i));
        }
        assertThat(driver.pollUsed(0)).as("the clock stands still: nothing more passes").isNull();
        assertThat(blk.status() & VirtioBlk.DEVICE_NEEDS_RESET).isZero();

        clock.addAndGet(1000 * MS); // a full bucket again: the queue's timer finds 3 more
        for (int i = 3; i < 6; i++) {
            expectCompleted(reads.get(i));
        }
        await(() -> blk.rateLimiter().throttledEvents() == 2, "the queue to be throttled again");
        assertThat(driver.pollUsed(0)).isNull();
        clock.addAndGet(1000 * MS);
        for (int i = 6; i < 8; i++) {
            expectCompleted(reads.get(i));
        }
        assertThat(blk.rateLimiter().throttledEvents()).isEqualTo(2);
    }

    @Test
    void aRequestLargerThanTheBucketPassesAndAnUpdateReleasesTheParkedOnes() throws IOException {
        start(new RateLimit(new BucketSpec(1024, 0, 100_000), null)); // 1 KiB per 100 s: only the update can free the queue in time
        Read large = offerRead(0, 8); // 4 KiB: more than the bucket holds
        Read next = offerRead(64, 1);
        Read last = offerRead(128, 2);
        driver.notify(0);
        expectCompleted(large); // a full bucket lets it through, in debt
        await(() -> blk.rateLimiter().throttledEvents() == 1, "the queue to be throttled");
        assertThat(driver.pollUsed(0)).isNull();

        // PATCH: a limit high enough for everything, from another thread; the clock still stands still.
        blk.rateLimiter().update(new RateLimit(new BucketSpec(1 << 20, 0, 1000), null));
        expectCompleted(next);
        expectCompleted(last);
        assertThat(blk.rateLimiter().throttledEvents()).isEqualTo(1);
    }

    @Test
    void aThrottledQueueQuiescesWithNothingInFlightAndGoesOnAfterwards() throws IOException {
        start(new RateLimit(null, new BucketSpec(1, 0, 1000)));
        Read first = offerRead(0, 1);
        Read second = offerRead(8, 1);
        driver.notify(0);
        expectCompleted(first);
        await(() -> blk.rateLimiter().throttledEvents() == 1, "the queue to be throttled");
        blk.quiesce(); // returns: the parked request is back on the ring, not in flight
        clock.addAndGet(1000 * MS);
        assertThat(driver.pollUsed(0)).isNull();
        blk.resumeWork();
        expectCompleted(second);
    }
}
