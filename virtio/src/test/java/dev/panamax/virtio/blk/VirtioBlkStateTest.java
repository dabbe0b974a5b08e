package dev.panamax.virtio.blk;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.RawImage;
import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** virtio-blk's quiesce (a request in flight is finished first) and the disk's identity in its saved state. */
class VirtioBlkStateTest {
    static final int QUEUE_SIZE = 64;

    @TempDir
    Path dir;
    Path image;
    byte[] original;
    GuestMemory memory;
    final List<VirtioDevice> devices = new ArrayList<>();

    @BeforeEach
    void setUp() throws IOException {
        image = dir.resolve("disk.raw");
        original = new byte[1 << 20];
        new Random(7).nextBytes(original);
        Files.write(image, original);
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(4 << 20));
    }

    @AfterEach
    void tearDown() {
        devices.forEach(VirtioDevice::close);
        memory.close();
    }

    <T extends VirtioDevice> T track(T device) {
        devices.add(device);
        return device;
    }

    /** A disk whose reads wait until the test lets them go, telling it when one has started. */
    static final class SlowDisk implements BlockBackend {
        final BlockBackend disk;
        final CountDownLatch readStarted = new CountDownLatch(1);
        final CountDownLatch readMayFinish = new CountDownLatch(1);

        SlowDisk(BlockBackend disk) {
            this.disk = disk;
        }

        @Override
        public void read(long offset, MemorySegment[] buffers, int count) throws IOException {
            readStarted.countDown();
            try {
                readMayFinish.await();
            } catch (InterruptedException e) {
                throw new IOException("interrupted", e);
            }
            disk.read(offset, buffers, count);
        }

        @Override public long size() { return disk.size(); }
        @Override public boolean isReadOnly() { return disk.isReadOnly(); }
        @Override public void read(long offset, ByteBuffer dst) throws IOException { disk.read(offset, dst); }
        @Override public void write(long offset, ByteBuffer src) throws IOException { disk.write(offset, src); }
        @Override public void writeZeroes(long offset, long length) throws IOException { disk.writeZeroes(offset, length); }
        @Override public void discard(long offset, long length) throws IOException { disk.discard(offset, length); }
        @Override public void flush() throws IOException { disk.flush(); }
        @Override public Extent extent(long offset, long maxLength) throws IOException { return disk.extent(offset, maxLength); }
        @Override public ImageFormat format() { return disk.format(); }
        @Override public ImageFile imageFile() { return disk.imageFile(); }
        @Override public void close() throws IOException { disk.close(); }
    }

    @Test
    void quiesceWaitsForTheReadInFlightAndItsUsedEntry() throws Exception {
        SlowDisk disk = new SlowDisk(RawImage.open(image, true));
        VirtioBlk blk = track(new VirtioBlk("disk0", disk, 1, QUEUE_SIZE));
        VirtioTestDriver driver = new VirtioTestDriver(blk, memory);
        driver.start(QUEUE_SIZE);
        long data = driver.allocate(512);
        long status = driver.allocate(1);
        driver.submit(0, readable(driver.allocate(VirtioBlkTest.header(VirtioBlk.T_IN, 2)), 16), writable(data, 512), writable(status, 1));
        disk.readStarted.await();

        // Lets the read finish only once this thread waits inside quiesce(): a quiesce that did not
        // wait would return with no used entry.
        Thread quiescing = Thread.currentThread();
        Thread releaser = Thread.ofPlatform().daemon().start(() -> {
            VirtioTestDriver.await(() -> quiescing.getState() == Thread.State.TIMED_WAITING
                    && Arrays.stream(quiescing.getStackTrace()).anyMatch(f -> f.getMethodName().equals("quiesce")),
                    "the test thread waiting in quiesce()");
            disk.readMayFinish.countDown();
        });
        try {
            blk.quiesce();
            assertThat(driver.usedIdx(0)).as("the request in flight was answered before quiesce returned").isEqualTo(1);
        } finally {
            disk.readMayFinish.countDown();
        }
        releaser.join();
        assertThat(driver.read(status, 1)[0]).isEqualTo(VirtioBlk.S_OK);
        assertThat(driver.read(data, 512)).isEqualTo(Arrays.copyOfRange(original, 1024, 1536));

        long flushStatus = driver.allocate(1);
        driver.submit(0, readable(driver.allocate(VirtioBlkTest.header(VirtioBlk.T_FLUSH, 0)), 16), writable(flushStatus, 1));
        StateWriter out = new StateWriter();
        blk.saveState(out);
        blk.resumeWork();
        assertThat(driver.awaitUsed(0).length()).as("the read").isEqualTo(513);
        assertThat(driver.awaitUsed(0).length()).as("the flush, held back while quiesced").isEqualTo(1);
    }

    private byte[] savedState(VirtioBlk blk) {
        blk.quiesce();
        StateWriter out = new StateWriter();
        blk.saveState(out);
        return out.toByteArray();
    }

    private static void restore(VirtioDevice device, byte[] state) {
        StateReader in = new StateReader(state, "the snapshot");
        device.restoreState(in);
        in.end();
    }

    @Test
    void aRestoredDiskAnswersReadsWhereItsQueueStood() throws IOException {
        VirtioBlk blk = track(VirtioBlk.open("disk0", image, false, 1));
        VirtioTestDriver driver = new VirtioTestDriver(blk, memory);
        driver.start(QUEUE_SIZE);
        long status = driver.allocate(1);
        driver.submit(0, readable(driver.allocate(VirtioBlkTest.header(VirtioBlk.T_FLUSH, 0)), 16), writable(status, 1));
        driver.awaitUsed(0);
        byte[] state = savedState(blk);
        blk.close();

        VirtioBlk fresh = track(VirtioBlk.open("disk0", image, false, 1));
        fresh.connect(memory, driver.interrupts());
        restore(fresh, state);
        assertThat(fresh.status()).isEqualTo(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK
                | VirtioDevice.DRIVER_OK);
        long data = driver.allocate(512);
        driver.offer(0, readable(driver.allocate(VirtioBlkTest.header(VirtioBlk.T_IN, 0)), 16), writable(data, 512),
                writable(driver.allocate(1), 1));
        fresh.notifyEvent(0).signal();
        assertThat(driver.awaitUsed(0).length()).isEqualTo(513);
        assertThat(driver.usedIdx(0)).isEqualTo(2);
        assertThat(driver.read(data, 512)).isEqualTo(Arrays.copyOf(original, 512));
    }

    /**
     * A migration's destination: the drive built without its image (which another process holds
     * locked meanwhile), opened and locked later, takes the saved state and answers reads.
     */
    @Test
    void aDriveBuiltUnboundOpensItsImageLaterLockedAndRunsOnTheSavedState() throws IOException {
        VirtioBlk blk = track(VirtioBlk.open("disk0", image, false, 1));
        VirtioTestDriver driver = new VirtioTestDriver(blk, memory);
        driver.start(QUEUE_SIZE);
        byte[] state = savedState(blk);

        VirtioBlk late = track(VirtioBlk.unbound("disk0", image, ImageFormat.RAW, false, original.length, 1,
                dev.panamax.virtio.ratelimit.RateLimiter.unlimited()));
        assertThat(late.deviceFeatures()).isEqualTo(blk.deviceFeatures());
        assertThat(savedIdentity(late)).as("the identity a snapshot records").isEqualTo(savedIdentity(blk));
        assertThatThrownBy(late::bindDisk).as("while the first holds the image").isInstanceOf(IOException.class).hasMessageContaining("in use");
        blk.close();
        late.bindDisk();
        assertThatThrownBy(() -> dev.panamax.storage.image.Images.open(image,
                dev.panamax.storage.image.Images.OpenOptions.readWrite().withLock())).as("the bound drive holds the lock")
                .isInstanceOf(IOException.class).hasMessageContaining("in use");

        VirtioTestDriver continued = driver.continuedOn(late);
        restore(late, state);
        long data = continued.allocate(512);
        continued.submit(0, readable(continued.allocate(VirtioBlkTest.header(VirtioBlk.T_IN, 1)), 16), writable(data, 512),
                writable(continued.allocate(1), 1));
        assertThat(continued.awaitUsed(0).length()).isEqualTo(513);
        assertThat(continued.read(data, 512)).isEqualTo(Arrays.copyOfRange(original, 512, 1024));
        assertThatThrownBy(late::bindDisk).isInstanceOf(IllegalStateException.class).hasMessage("virtio-blk (disk0) has its disk already");
    }

    @Test
    void anUnboundDriveWhoseImageWasResizedMeanwhileIsRefusedAtTheBind() throws IOException {
        VirtioBlk late = track(VirtioBlk.unbound("disk0", image, ImageFormat.RAW, false, original.length, 1,
                dev.panamax.virtio.ratelimit.RateLimiter.unlimited()));
        Files.write(image, new byte[2 << 20]);
        assertThatThrownBy(late::bindDisk).isInstanceOf(IOException.class)
                .hasMessage(image + " has 2097152 bytes now, and had 1048576 (was it resized?)");
        Files.write(image, original);
        late.bindDisk(); // the failed bind left nothing open or locked
    }

    private static byte[] savedIdentity(VirtioBlk blk) {
        StateWriter out = new StateWriter();
        blk.saveIdentity(out);
        return out.toByteArray();
    }

    private String refusal(VirtioBlk saved, VirtioBlk other) {
        VirtioTestDriver driver = new VirtioTestDriver(saved, memory);
        driver.start(QUEUE_SIZE);
        byte[] state = savedState(saved);
        other.connect(memory, driver.interrupts());
        Throwable thrown = org.assertj.core.api.Assertions.catchThrowable(() -> restore(other, state));
        assertThat(thrown).isInstanceOf(StateFormatException.class);
        assertThat(other.status()).as("nothing applied").isZero();
        return thrown.getMessage();
    }

    @Test
    void anotherImageIsRefusedNamingBoth() throws IOException {
        Path second = dir.resolve("other.raw");
        Files.write(second, original);
        assertThat(refusal(track(VirtioBlk.open("disk0", image, false, 1)), track(VirtioBlk.open("disk0", second, false, 1))))
                .isEqualTo("section identity of the snapshot: the snapshot's drive disk0 has image '" + image + "', and this VM's has '"
                        + second + "'");
    }

    @Test
    void aReadOnlyDriveWhereAWritableOneWasIsRefused() throws IOException {
        assertThat(refusal(track(new VirtioBlk("disk0", RawImage.open(image, true), image, 1, QUEUE_SIZE)),
                track(new VirtioBlk("disk0", RawImage.open(image, false), image, 1, QUEUE_SIZE))))
                .isEqualTo("section identity of the snapshot: the snapshot's drive disk0 is writable, and this VM's is read-only");
    }

    @Test
    void anotherIdOrCapacityIsRefused() throws IOException {
        assertThat(refusal(track(new VirtioBlk("disk0", RawImage.open(image, true), 1, QUEUE_SIZE)),
                track(new VirtioBlk("disk1", RawImage.open(image, true), 1, QUEUE_SIZE))))
                .contains("the snapshot's drive has ID 'disk0', and this VM's drive has 'disk1'");
        Path bigger = dir.resolve("bigger.raw");
        Files.write(bigger, new byte[2 << 20]);
        assertThat(refusal(track(new VirtioBlk("disk0", RawImage.open(image, true), 1, QUEUE_SIZE)),
                track(new VirtioBlk("disk0", RawImage.open(bigger, true), 1, QUEUE_SIZE))))
                .contains("the snapshot's drive disk0 has 2048 sectors, and this VM's has 4096");
    }

    @Test
    void savingWhileARequestIsInFlightIsRefused() throws Exception {
        SlowDisk disk = new SlowDisk(RawImage.open(image, true));
        VirtioBlk blk = track(new VirtioBlk("disk0", disk, 1, QUEUE_SIZE));
        VirtioTestDriver driver = new VirtioTestDriver(blk, memory);
        driver.start(QUEUE_SIZE);
        driver.submit(0, readable(driver.allocate(VirtioBlkTest.header(VirtioBlk.T_IN, 0)), 16), writable(driver.allocate(512), 512),
                writable(driver.allocate(1), 1));
        disk.readStarted.await();
        try {
            assertThatThrownBy(() -> blk.saveState(new StateWriter())).isInstanceOf(IllegalStateException.class)
                    .hasMessage("virtio-blk (disk0): its queues are in use; quiesce it before saving its state");
        } finally {
            disk.readMayFinish.countDown();
        }
    }
}
