package dev.panamax.virtio.blk;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.RawImage;
import dev.panamax.storage.image.Images;
import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.virtio.VirtioTestDriver.Buffer;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.virtio.ratelimit.RateLimiter;
import dev.panamax.vm.GuestMemory;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VirtioBlkTest {
    static final int DISK_SIZE = 1 << 20;
    static final long SECTORS = DISK_SIZE / 512;
    static final int QUEUE_SIZE = 64;

    @TempDir
    Path dir;
    Path image;
    byte[] original;
    GuestMemory memory;
    VirtioBlk blk;
    VirtioTestDriver driver;

    /** What the device answered: the status byte, the used length and the bytes of the data buffer. */
    record Result(int status, int usedLength, byte[] data) {}

    @BeforeEach
    void setUp() throws IOException {
        image = dir.resolve("disk.raw");
        original = new byte[DISK_SIZE];
        new Random(7).nextBytes(original);
        Files.write(image, original);
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

    void start(BlockBackend disk, int queues) {
        blk = new VirtioBlk("disk0", disk, queues, QUEUE_SIZE);
        driver = new VirtioTestDriver(blk, memory);
        driver.start(QUEUE_SIZE);
    }

    void startWritable() throws IOException {
        start(RawImage.open(image, true), 1);
    }

    static byte[] header(int type, long sector) {
        return ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putInt(type).putInt(0).putLong(sector).array();
    }

    static byte[] segment(long sector, long sectors, int flags) {
        return ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(sector).putInt((int) sectors).putInt(flags).array();
    }

    /**
     * Sends a request: the header, {@code out} (readable, split in two buffers when longer than a
     * sector), {@code inLength} writable data bytes and the status byte.
     */
    Result request(int q, int type, long sector, byte[] out, int inLength, boolean indirect) {
        List<Buffer> chain = new ArrayList<>();
        chain.add(readable(driver.allocate(header(type, sector)), 16));
        if (out.length > 512) {
            chain.add(readable(driver.allocate(Arrays.copyOf(out, 512)), 512));
            chain.add(readable(driver.allocate(Arrays.copyOfRange(out, 512, out.length)), out.length - 512));
        } else if (out.length > 0) {
            chain.add(readable(driver.allocate(out), out.length));
        }
        long in = inLength > 0 ? driver.allocate(inLength) : 0;
        if (inLength > 0) {
            chain.add(writable(in, inLength));
        }
        long status = driver.allocate(new byte[] {(byte) 0xff});
        chain.add(writable(status, 1));
        Buffer[] buffers = chain.toArray(Buffer[]::new);
        int head = indirect ? driver.submitIndirect(q, buffers) : driver.submit(q, buffers);
        Used used = driver.awaitUsed(q);
        assertThat(used.id()).isEqualTo(head);
        return new Result(driver.read(status, 1)[0], used.length(), inLength > 0 ? driver.read(in, inLength) : new byte[0]);
    }

    Result request(int type, long sector, byte[] out, int inLength) {
        return request(0, type, sector, out, inLength, false);
    }

    byte[] disk(long offset, int length) throws IOException {
        return Arrays.copyOfRange(Files.readAllBytes(image), (int) offset, (int) offset + length);
    }

    @Test
    void configSpaceDescribesTheDisk() throws IOException {
        start(RawImage.open(image, true), 2);
        assertThat(blk.deviceType()).isEqualTo(2);
        assertThat(blk.name()).isEqualTo("virtio-blk (disk0)");
        assertThat(blk.configSize()).isEqualTo(60);
        assertThat(blk.readConfig(0, 8)).isEqualTo(SECTORS);
        assertThat(blk.readConfig(0, 4)).isEqualTo(SECTORS); // a narrower read of the same field
        assertThat(blk.readConfig(12, 4)).as("seg_max").isEqualTo(QUEUE_SIZE - 2);
        assertThat(blk.readConfig(20, 4)).as("blk_size").isEqualTo(512);
        assertThat(blk.readConfig(34, 2)).as("num_queues").isEqualTo(2);
        assertThat(blk.readConfig(36, 4)).as("max_discard_sectors").isEqualTo(0xffff_ffffL);
        assertThat(blk.readConfig(40, 4)).as("max_discard_seg").isEqualTo(VirtioBlk.MAX_SEGMENTS);
        assertThat(blk.readConfig(44, 4)).as("discard_sector_alignment").isEqualTo(8);
        assertThat(blk.readConfig(52, 4)).as("max_write_zeroes_seg").isEqualTo(VirtioBlk.MAX_SEGMENTS);
        assertThat(blk.readConfig(56, 1)).as("write_zeroes_may_unmap").isEqualTo(1);
        assertThat(blk.readConfig(58, 4)).as("past the end").isZero();
        assertThat(blk.readConfig(-1, 1)).isZero();
        blk.writeConfig(0, 8, 5);
        assertThat(blk.readConfig(0, 8)).isEqualTo(SECTORS);
        assertThat(blk.deviceFeatures()).isEqualTo(1L << 32 | 1L << 28 | 1L << 29
                | 1L << 2 | 1L << 6 | 1L << 9 | 1L << 12 | 1L << 13 | 1L << 14);
    }

    @Test
    void readsReturnTheDiskAndWritesReachTheFile() throws IOException {
        startWritable();
        Result read = request(VirtioBlk.T_IN, 3, new byte[0], 4096);
        assertThat(read.status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(read.usedLength()).isEqualTo(4097);
        assertThat(read.data()).isEqualTo(Arrays.copyOfRange(original, 3 * 512, 3 * 512 + 4096));

        byte[] data = new byte[1536];
        new Random(1).nextBytes(data);
        Result write = request(0, VirtioBlk.T_OUT, SECTORS - 3, data, 0, true); // the last three sectors, indirect
        assertThat(write.status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(write.usedLength()).isEqualTo(1);
        assertThat(request(VirtioBlk.T_FLUSH, 0, new byte[0], 0).status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(disk((SECTORS - 3) * 512, 1536)).isEqualTo(data);
        assertThat(request(0, VirtioBlk.T_IN, SECTORS - 3, new byte[0], 1536, true).data()).isEqualTo(data);
    }

    /**
     * Thirteen requests offered before one notification, so that the queue takes them as one batch
     * (a raw image's io_uring here): writes, a flush, reads after it of what the writes wrote (the
     * flush waits for the writes before it), a read past the end, a GET_ID and a plain read. Each is
     * answered as it would have been alone.
     */
    @Test
    void requestsOfferedTogetherAreAnsweredAsEachAloneWouldBe() throws IOException {
        startWritable();
        record Offered(int head, long status, long in, int inLength) {}
        List<Offered> offered = new ArrayList<>();
        List<byte[]> written = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            byte[] data = new byte[1024];
            new Random(100 + i).nextBytes(data);
            written.add(data);
            long status = driver.allocate(new byte[] {(byte) 0xff});
            int head = driver.offer(0, readable(driver.allocate(header(VirtioBlk.T_OUT, 10 + 4 * i)), 16),
                    readable(driver.allocate(Arrays.copyOf(data, 512)), 512),
                    readable(driver.allocate(Arrays.copyOfRange(data, 512, 1024)), 512), writable(status, 1));
            offered.add(new Offered(head, status, 0, 0));
        }
        long flushStatus = driver.allocate(new byte[] {(byte) 0xff});
        offered.add(new Offered(driver.offer(0, readable(driver.allocate(header(VirtioBlk.T_FLUSH, 0)), 16), writable(flushStatus, 1)),
                flushStatus, 0, 0));
        long[][] reads = {{10, 1024}, {18, 1024}, {30, 1024}, {SECTORS - 1, 1024}, {-1, 20}, {500, 4096}};
        for (long[] r : reads) {
            boolean getId = r[0] < 0;
            long in = driver.allocate((int) r[1]);
            long status = driver.allocate(new byte[] {(byte) 0xff});
            int head = driver.offer(0, readable(driver.allocate(header(getId ? VirtioBlk.T_GET_ID : VirtioBlk.T_IN, Math.max(0, r[0]))), 16),
                    writable(in, r[1]), writable(status, 1));
            offered.add(new Offered(head, status, in, (int) r[1]));
        }
        driver.notify(0);
        Map<Integer, Used> used = new HashMap<>();
        for (int i = 0; i < offered.size(); i++) {
            Used u = driver.awaitUsed(0);
            used.put(u.id(), u);
        }
        assertThat(used).hasSize(offered.size());
        for (int i = 0; i < 6; i++) {
            assertThat(driver.read(offered.get(i).status(), 1)[0]).as("write " + i).isEqualTo((byte) 0);
            assertThat(used.get(offered.get(i).head()).length()).as("write " + i + "'s used length").isEqualTo(1);
            assertThat(disk((10 + 4 * i) * 512L, 1024)).as("write " + i + " on the disk").isEqualTo(written.get(i));
        }
        assertThat(driver.read(flushStatus, 1)[0]).isEqualTo((byte) 0);
        int[] expectedStatus = {0, 0, 0, 1, 0, 0};
        byte[][] expectedData = {written.get(0), written.get(2), written.get(5), null, Arrays.copyOf("disk0".getBytes(), 20),
                Arrays.copyOfRange(original, 500 * 512, 500 * 512 + 4096)};
        for (int k = 0; k < reads.length; k++) {
            Offered o = offered.get(7 + k);
            assertThat(driver.read(o.status(), 1)[0]).as("read " + k).isEqualTo((byte) expectedStatus[k]);
            if (expectedData[k] != null) {
                assertThat(driver.read(o.in(), o.inLength())).as("read " + k + "'s data").isEqualTo(expectedData[k]);
                assertThat(used.get(o.head()).length()).as("read " + k + "'s used length").isEqualTo(o.inLength() + 1);
            } else {
                assertThat(used.get(o.head()).length()).as("read " + k + "'s used length").isEqualTo(1);
            }
        }
        assertThat(blk.counts().writeCount()).isEqualTo(6);
        assertThat(blk.counts().writeBytes()).isEqualTo(6 * 1024);
        assertThat(blk.counts().readCount()).isEqualTo(4);
        assertThat(blk.counts().readBytes()).isEqualTo(3 * 1024 + 4096);
        assertThat(blk.counts().flushCount()).isEqualTo(1);
        assertThat(blk.failure()).isNull();
    }

    /**
     * A chain that is no request, among requests offered together: the device fails, but the writes
     * before it in the batch are carried out first and nothing of the batch is left queued for the
     * host to do after the reset.
     */
    @Test
    void aChainThatIsNoRequestInABatchFailsTheDeviceAfterTheWritesBeforeIt() throws IOException {
        startWritable();
        byte[] first = new byte[512];
        byte[] second = new byte[512];
        byte[] after = new byte[512];
        Arrays.fill(first, (byte) 1);
        Arrays.fill(second, (byte) 2);
        Arrays.fill(after, (byte) 3);
        long[] statuses = new long[3];
        byte[][] data = {first, second, after};
        long[] sectors = {10, 20, 30};
        for (int k = 0; k < 3; k++) {
            if (k == 2) { // an 8-byte header
                driver.offer(0, readable(driver.allocate(header(VirtioBlk.T_OUT, 40)), 8), writable(driver.allocate(1), 1));
            }
            statuses[k] = driver.allocate(new byte[] {(byte) 0xff});
            driver.offer(0, readable(driver.allocate(header(VirtioBlk.T_OUT, sectors[k])), 16), readable(driver.allocate(data[k]), 512),
                    writable(statuses[k], 1));
        }
        driver.notify(0);
        assertThat(driver.awaitFailure()).contains("has a header of 8 readable bytes");
        assertThat(disk(10 * 512, 512)).as("the write before the bad chain").isEqualTo(first);
        assertThat(disk(20 * 512, 512)).as("the second write before it").isEqualTo(second);
        assertThat(driver.read(statuses[0], 1)[0]).isEqualTo((byte) 0);
        driver.reset();
        driver.start(QUEUE_SIZE);
        assertThat(request(VirtioBlk.T_OUT, 50, after, 0).status()).isEqualTo(0);
        assertThat(request(VirtioBlk.T_IN, 50, new byte[0], 512).data()).isEqualTo(after);
        assertThat(disk(30 * 512, 512)).as("the write after the bad chain, never done").isEqualTo(Arrays.copyOfRange(original, 30 * 512, 31 * 512));
    }

    /** The same when the bad chain cannot even be taken off the ring (a buffer outside guest memory). */
    @Test
    void aChainOutsideGuestMemoryInABatchFailsTheDeviceAfterTheRequestsBeforeIt() throws IOException {
        startWritable();
        byte[] first = new byte[512];
        Arrays.fill(first, (byte) 1);
        long status = driver.allocate(new byte[] {(byte) 0xff});
        driver.offer(0, readable(driver.allocate(header(VirtioBlk.T_OUT, 10)), 16), readable(driver.allocate(first), 512),
                writable(status, 1));
        driver.offer(0, readable(driver.allocate(header(VirtioBlk.T_OUT, 20)), 16), readable(1L << 40, 512),
                writable(driver.allocate(1), 1));
        driver.notify(0);
        assertThat(driver.awaitFailure()).contains("not inside guest memory");
        assertThat(disk(10 * 512, 512)).as("the write before the bad chain").isEqualTo(first);
        assertThat(driver.read(status, 1)[0]).isEqualTo((byte) 0);
        assertThat(driver.awaitUsed(0).length()).as("its used entry").isEqualTo(1);
    }

    @Test
    void theCountsFollowTheRequestsDone() throws IOException {
        startWritable();
        request(VirtioBlk.T_IN, 3, new byte[0], 4096);
        request(0, VirtioBlk.T_IN, 8, new byte[0], 1024, true);
        request(VirtioBlk.T_OUT, 0, new byte[1536], 0);
        request(VirtioBlk.T_FLUSH, 0, new byte[0], 0);
        request(VirtioBlk.T_GET_ID, 0, new byte[0], 20);
        request(VirtioBlk.T_IN, SECTORS, new byte[0], 512); // past the end
        request(VirtioBlk.T_OUT, 0, new byte[700], 0); // not whole sectors
        request(99, 0, new byte[0], 0); // an unknown type
        BlkCounts c = blk.counts();
        assertThat(List.of(c.readCount(), c.readBytes(), c.writeCount(), c.writeBytes(), c.flushCount(), c.invalidRequests(),
                blk.ioErrors())).as("reads, bytes read, writes, bytes written, flushes, invalid requests, I/O errors")
                .containsExactly(2L, 5120L, 1L, 1536L, 1L, 3L, 0L);
    }

    @Test
    void failedRequestsCountAsIoErrorsNotAsDone() throws IOException {
        start(new FailingDisk(RawImage.open(image, true)), 1);
        request(VirtioBlk.T_IN, 0, new byte[0], 512);
        request(VirtioBlk.T_OUT, 0, new byte[512], 0);
        request(VirtioBlk.T_FLUSH, 0, new byte[0], 0);
        BlkCounts c = blk.counts();
        assertThat(List.of(c.readCount(), c.writeCount(), c.flushCount(), c.invalidRequests(), blk.ioErrors()))
                .containsExactly(0L, 0L, 0L, 0L, 3L);
    }

    @Test
    void getIdReturnsTheNulPaddedDriveId() throws IOException {
        startWritable();
        Result id = request(VirtioBlk.T_GET_ID, 0, new byte[0], 20);
        assertThat(id.status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(id.usedLength()).isEqualTo(21);
        assertThat(id.data()).isEqualTo(Arrays.copyOf("disk0".getBytes(), 20));
    }

    @Test
    void discardAndWriteZeroesMakeRangesReadAsZeros() throws IOException {
        startWritable();
        byte[] two = new byte[32];
        System.arraycopy(segment(8, 8, 0), 0, two, 0, 16);
        System.arraycopy(segment(64, 16, 0), 0, two, 16, 16);
        assertThat(request(VirtioBlk.T_DISCARD, 0, two, 0).status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(request(VirtioBlk.T_WRITE_ZEROES, 0, segment(100, 3, VirtioBlk.FLAG_UNMAP), 0).status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(request(VirtioBlk.T_WRITE_ZEROES, 0, segment(200, 1, 0), 0).status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(disk(8 * 512, 8 * 512)).containsOnly(0);
        assertThat(disk(64 * 512, 16 * 512)).containsOnly(0);
        assertThat(disk(100 * 512, 3 * 512)).containsOnly(0);
        assertThat(disk(200 * 512, 512)).containsOnly(0);
        assertThat(disk(16 * 512, 48 * 512)).isEqualTo(Arrays.copyOfRange(original, 16 * 512, 64 * 512));
        assertThat(disk(103 * 512, 512)).isEqualTo(Arrays.copyOfRange(original, 103 * 512, 104 * 512));
    }

    @Test
    void badRequestsAreAnsweredAndTheDeviceGoesOn() throws IOException {
        startWritable();
        int ioerr = VirtioBlk.S_IOERR;
        int unsupp = VirtioBlk.S_UNSUPP;
        assertThat(request(VirtioBlk.T_IN, SECTORS, new byte[0], 512).status()).as("read past the end").isEqualTo(ioerr);
        assertThat(request(VirtioBlk.T_IN, SECTORS - 1, new byte[0], 1024).status()).as("read across the end").isEqualTo(ioerr);
        assertThat(request(VirtioBlk.T_IN, -1, new byte[0], 512).status()).as("sector 2^64-1").isEqualTo(ioerr);
        assertThat(request(VirtioBlk.T_OUT, Long.MAX_VALUE / 256, new byte[512], 0).status()).as("offset overflows").isEqualTo(ioerr);
        assertThat(request(VirtioBlk.T_IN, 0, new byte[0], 100).status()).as("not whole sectors").isEqualTo(ioerr);
        assertThat(request(VirtioBlk.T_OUT, 0, new byte[700], 0).status()).as("not whole sectors").isEqualTo(ioerr);
        assertThat(request(99, 0, new byte[0], 0).status()).as("unknown type").isEqualTo(unsupp);
        assertThat(request(VirtioBlk.T_DISCARD, 0, segment(0, 8, VirtioBlk.FLAG_UNMAP), 0).status()).as("unmap on discard").isEqualTo(unsupp);
        assertThat(request(VirtioBlk.T_WRITE_ZEROES, 0, segment(0, 8, 2), 0).status()).as("unknown flag").isEqualTo(unsupp);
        assertThat(request(VirtioBlk.T_WRITE_ZEROES, 0, segment(SECTORS - 1, 2, 0), 0).status()).as("zeroes past the end").isEqualTo(ioerr);
        assertThat(request(VirtioBlk.T_DISCARD, 0, new byte[0], 0).status()).as("no segment").isEqualTo(ioerr);
        assertThat(request(VirtioBlk.T_DISCARD, 0, new byte[24], 0).status()).as("part of a segment").isEqualTo(ioerr);
        assertThat(request(VirtioBlk.T_DISCARD, 0, new byte[16 * (VirtioBlk.MAX_SEGMENTS + 1)], 0).status()).as("too many segments").isEqualTo(ioerr);
        assertThat(Files.readAllBytes(image)).as("no bad request changed the disk").isEqualTo(original);
        assertThat(blk.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();
        assertThat(request(VirtioBlk.T_IN, 0, new byte[0], 512).data()).isEqualTo(Arrays.copyOf(original, 512));
    }

    @Test
    void aReadOnlyDiskRefusesWritesWithIoErr() throws IOException {
        start(RawImage.open(image, false), 1);
        assertThat(blk.deviceFeatures() & 1L << VirtioBlk.VIRTIO_BLK_F_RO).isNotZero();
        assertThat(blk.deviceFeatures() & (1L << VirtioBlk.VIRTIO_BLK_F_DISCARD | 1L << VirtioBlk.VIRTIO_BLK_F_WRITE_ZEROES)).isZero();
        assertThat(request(VirtioBlk.T_OUT, 0, new byte[512], 0).status()).isEqualTo(VirtioBlk.S_IOERR);
        assertThat(request(VirtioBlk.T_WRITE_ZEROES, 0, segment(0, 1, 0), 0).status()).isEqualTo(VirtioBlk.S_UNSUPP);
        assertThat(request(VirtioBlk.T_FLUSH, 0, new byte[0], 0).status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(request(VirtioBlk.T_IN, 1, new byte[0], 512).data()).isEqualTo(Arrays.copyOfRange(original, 512, 1024));
        assertThat(Files.readAllBytes(image)).isEqualTo(original);
    }

    @Test
    void twoRequestQueuesAreServedByTheirOwnThreads() throws IOException {
        start(RawImage.open(image, true), 2);
        byte[] a = new byte[512];
        byte[] b = new byte[512];
        Arrays.fill(a, (byte) 'a');
        Arrays.fill(b, (byte) 'b');
        assertThat(request(0, VirtioBlk.T_OUT, 10, a, 0, false).status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(request(1, VirtioBlk.T_OUT, 11, b, 0, true).status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(request(1, VirtioBlk.T_IN, 10, new byte[0], 1024, false).data()).startsWith(a).endsWith(b);
        assertThat(request(0, VirtioBlk.T_IN, 11, new byte[0], 512, true).data()).isEqualTo(b);
        assertThat(Thread.getAllStackTraces().keySet()).extracting(Thread::getName)
                .contains("virtio-blk-disk0-q0", "virtio-blk-disk0-q1");
    }

    /** A disk in a format Panamax cannot read is refused when the device opens it, unless it is given as raw. */
    @Test
    void anImageInAForeignFormatIsRefusedUnlessRawIsGiven() throws IOException {
        byte[] qed = new byte[1 << 20];
        System.arraycopy("QED\0".getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, qed, 0, 4);
        Path image = Files.write(dir.resolve("disk.qed"), qed);
        assertThatThrownBy(() -> VirtioBlk.open("disk0", image, false, 1)).isInstanceOf(dev.panamax.storage.InvalidImageException.class)
                .hasMessageStartingWith(image + " is a QED image (QEMU enhanced disk), which Panamax cannot read yet");
        blk = VirtioBlk.open("disk0", image, ImageFormat.RAW, false, 1, RateLimiter.unlimited());
        driver = new VirtioTestDriver(blk, memory);
        driver.start(QUEUE_SIZE);
        assertThat(blk.capacity()).isEqualTo(2048);
        assertThat(request(VirtioBlk.T_IN, 0, new byte[0], 512).data()).startsWith("QED\0".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
    }

    @Test
    void aQcow2ImageWorksThroughImagesOpen() throws IOException {
        Path qcow2 = dir.resolve("disk.qcow2");
        Images.create(qcow2, CreateOptions.of(ImageFormat.QCOW2, 4 << 20));
        blk = VirtioBlk.open("qcow", qcow2, false, 1);
        driver = new VirtioTestDriver(blk, memory);
        driver.start(QUEUE_SIZE);
        assertThat(blk.capacity()).isEqualTo(8192);
        byte[] data = new byte[4096];
        new Random(3).nextBytes(data);
        assertThat(request(VirtioBlk.T_OUT, 5000, data, 0).status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(request(VirtioBlk.T_FLUSH, 0, new byte[0], 0).status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(request(VirtioBlk.T_IN, 5000, new byte[0], 4096).data()).isEqualTo(data);
        assertThatThrownBy(() -> VirtioBlk.open("again", qcow2, true, 1))
                .hasMessageContaining("disk image " + qcow2 + " is in use by another process (locked)");
        blk.close();
        blk = null;
        try (BlockBackend reopened = Images.open(qcow2, Images.OpenOptions.readOnly())) {
            ByteBuffer back = ByteBuffer.allocate(4096);
            reopened.read(5000L * 512, back);
            assertThat(back.array()).isEqualTo(data);
        }
    }

    @Test
    void aChainThatIsNoRequestFailsTheDeviceAndAResetRecovers() throws IOException {
        startWritable();
        long status = driver.allocate(1);
        driver.submit(0, readable(driver.allocate(header(VirtioBlk.T_IN, 0)), 8), writable(status, 1));
        assertThat(driver.awaitFailure()).isEqualTo("queue 0: request at descriptor 0 has a header of 8 readable bytes, not 16");
        driver.reset();
        driver.start(QUEUE_SIZE);
        driver.submit(0, readable(driver.allocate(header(VirtioBlk.T_FLUSH, 0)), 16));
        assertThat(driver.awaitFailure()).contains("has no writable status byte");
        driver.reset();
        driver.start(QUEUE_SIZE);
        assertThat(request(VirtioBlk.T_IN, 0, new byte[0], 512).status()).isEqualTo(VirtioBlk.S_OK);
    }

    @Test
    void backendErrorsAreAnsweredWithIoErr() throws IOException {
        start(new FailingDisk(RawImage.open(image, true)), 1);
        assertThat(request(VirtioBlk.T_IN, 0, new byte[0], 512).status()).isEqualTo(VirtioBlk.S_IOERR);
        assertThat(request(VirtioBlk.T_OUT, 0, new byte[512], 0).status()).isEqualTo(VirtioBlk.S_IOERR);
        assertThat(request(VirtioBlk.T_FLUSH, 0, new byte[0], 0).status()).isEqualTo(VirtioBlk.S_IOERR);
        assertThat(request(VirtioBlk.T_DISCARD, 0, segment(0, 1, 0), 0).status()).isEqualTo(VirtioBlk.S_IOERR);
        assertThat(request(VirtioBlk.T_GET_ID, 0, new byte[0], 20).status()).isEqualTo(VirtioBlk.S_OK);
        assertThat(blk.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();
    }

    /** A disk whose every data operation fails, as a dying host disk's would. */
    record FailingDisk(BlockBackend disk) implements BlockBackend {
        @Override public long size() { return disk.size(); }
        @Override public boolean isReadOnly() { return false; }
        @Override public void read(long offset, ByteBuffer dst) throws IOException { throw new IOException("EIO"); }
        @Override public void write(long offset, ByteBuffer src) throws IOException { throw new IOException("EIO"); }
        @Override public void writeZeroes(long offset, long length) throws IOException { throw new IOException("EIO"); }
        @Override public void discard(long offset, long length) throws IOException { throw new IOException("EIO"); }
        @Override public void flush() throws IOException { throw new IOException("EIO"); }
        @Override public Extent extent(long offset, long maxLength) throws IOException { return disk.extent(offset, maxLength); }
        @Override public ImageFormat format() { return disk.format(); }
        @Override public ImageFile imageFile() { return disk.imageFile(); }
        @Override public void close() throws IOException { disk.close(); }
    }
}
