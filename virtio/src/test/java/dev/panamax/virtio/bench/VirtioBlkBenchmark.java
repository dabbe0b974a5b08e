package dev.panamax.virtio.bench;

import dev.panamax.storage.RawImage;
import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.QueueSettings;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.ratelimit.BucketSpec;
import dev.panamax.virtio.ratelimit.RateLimit;
import dev.panamax.virtio.ratelimit.RateLimiter;
import dev.panamax.vm.GuestMemory;
import java.io.IOException;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * Host-side virtqueue throughput: random 4 KiB reads through {@link VirtioBlk} from a raw file in the
 * page cache, driven by a Java driver (no guest). Each invocation makes {@value #BATCH} requests
 * available at once (one indirect descriptor each, as Linux sends them), notifies, and sleeps until
 * the used-ring interrupt (EVENT_IDX: one per batch), so the device thread has the CPU to itself.
 * {@code backendRead4k} is the same read straight from the backend into guest memory, for the
 * device's own cost. {@code limiter} is the drive's rate limiter: {@code none} (the default, its
 * buckets off) or {@code huge} (both buckets on, 1 TiB/s and 10^9 requests/s, so every request goes
 * through the token arithmetic and never waits): the cost of a configured limiter on the request path.
 * Run pinned to one core:
 * {@code taskset -c 0 ./mvnw -B -q -pl virtio test-compile exec:exec -Dbench=VirtioBlkBenchmark}
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class VirtioBlkBenchmark {
    static final int QUEUE_SIZE = 256;
    static final int BATCH = 128;
    static final int BLOCK = 4096;
    static final long DISK_SIZE = 64L << 20;
    // Guest-physical layout: rings, then per request slot its header, status, indirect table and data.
    static final long DESC = 0x1000;
    static final long AVAIL = 0x2000;
    static final long USED = 0x3000;
    static final long SLOTS = 0x10000;
    static final long DATA = 0x100000;

    private Path file;
    private GuestMemory memory;
    private VirtioBlk blk;
    private RawImage direct;
    private volatile Thread driverThread;
    private int availIdx;
    private long random = 0x9e3779b97f4a7c15L;

    @Param({"none", "huge"})
    public String limiter;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        file = Files.createTempFile("panamax-virtio-bench", ".raw");
        byte[] chunk = new byte[1 << 20];
        Random r = new Random(1);
        try (var out = Files.newOutputStream(file)) {
            for (long i = 0; i < DISK_SIZE; i += chunk.length) {
                r.nextBytes(chunk);
                out.write(chunk);
            }
        }
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(DATA + (long) BATCH * BLOCK));
        direct = RawImage.open(file, false);
        RateLimiter rateLimiter = switch (limiter) {
            case "none" -> RateLimiter.unlimited();
            case "huge" -> new RateLimiter(new RateLimit(new BucketSpec(1L << 40, 0, 1000), new BucketSpec(1_000_000_000, 0, 1000)));
            default -> throw new IllegalArgumentException("limiter " + limiter + ": use none or huge");
        };
        blk = new VirtioBlk("bench", RawImage.open(file, false), null, 1, QUEUE_SIZE, rateLimiter);
        driverThread = Thread.currentThread();
        BenchDevices.connectWaking(blk, memory, driverThread);
        QueueSettings q = blk.queue(0);
        q.setSize(QUEUE_SIZE);
        q.setDescTable(DESC);
        q.setAvailRing(AVAIL);
        q.setUsedRing(USED);
        q.setReady(true);
        for (int i = 0; i < BATCH; i++) {
            long slot = SLOTS + 64L * i; // header at +0, status at +16, indirect table elsewhere
            long table = SLOTS + 64L * BATCH + 48L * i;
            memory.writeInt(slot, 0); // VIRTIO_BLK_T_IN
            descriptor(table, 0, slot, 16, 1, 1);
            descriptor(table, 1, DATA + (long) BLOCK * i, BLOCK, 1 | 2, 2);
            descriptor(table, 2, slot + 16, 1, 2, 0);
            descriptor(DESC, i, table, 48, 4, 0);
        }
        blk.setStatus(blk.status() | VirtioDevice.DRIVER_OK);
        long[] sectors = batch();
        for (int i = 0; i < BATCH; i++) { // the benchmark measures correct reads, or nothing
            ByteBuffer expected = ByteBuffer.allocate(BLOCK);
            direct.read(sectors[i] * 512, expected);
            byte[] got = new byte[BLOCK];
            memory.read(DATA + (long) BLOCK * i, got, 0, BLOCK);
            if (memory.readByte(SLOTS + 64L * i + 16) != 0 || !Arrays.equals(got, expected.array())) {
                throw new IllegalStateException("request " + i + " read the wrong data or failed; device: " + blk.failure());
            }
        }
    }

    private void descriptor(long table, int index, long address, int length, int flags, int next) {
        long at = table + 16L * index;
        memory.writeLong(at, address);
        memory.writeInt(at + 8, length);
        memory.writeShort(at + 12, (short) flags);
        memory.writeShort(at + 14, (short) next);
    }

    private long nextSector() {
        random ^= random << 13;
        random ^= random >>> 7;
        random ^= random << 17;
        return Long.remainderUnsigned(random, DISK_SIZE / BLOCK) * (BLOCK / 512);
    }

    /** One batch of reads: publish, notify, sleep until the device has used them all. */
    private long[] batch() {
        long[] sectors = new long[BATCH];
        for (int i = 0; i < BATCH; i++) {
            sectors[i] = nextSector();
            memory.writeLong(SLOTS + 64L * i + 8, sectors[i]);
            memory.writeShort(AVAIL + 4 + 2L * ((availIdx + i) % QUEUE_SIZE), (short) i);
        }
        availIdx = (availIdx + BATCH) & 0xffff;
        memory.writeShort(AVAIL + 4 + 2L * QUEUE_SIZE, (short) (availIdx - 1)); // used_event: interrupt at the last one
        VarHandle.releaseFence();
        memory.writeShort(AVAIL + 2, (short) availIdx);
        VarHandle.fullFence();
        blk.notifyEvent(0).signal();
        while (Short.toUnsignedInt(memory.readShort(USED + 2)) != availIdx) {
            if (blk.failure() != null) {
                throw new IllegalStateException(blk.failure());
            }
            LockSupport.park();
        }
        VarHandle.acquireFence();
        if (blk.rateLimiter().throttledEvents() != 0) {
            throw new IllegalStateException("the limiter throttled: it is to measure the cost of a limiter that never refuses");
        }
        return sectors;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public int virtioRead4k() {
        batch();
        return availIdx;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public int backendRead4k() throws IOException {
        for (int i = 0; i < BATCH; i++) {
            direct.read(nextSector() * 512, memory.slice(DATA + (long) BLOCK * i, BLOCK).asByteBuffer());
        }
        return availIdx;
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        blk.close();
        direct.close();
        memory.close();
        Files.delete(file);
    }

    public static void main(String[] args) throws Exception {
        new Runner(new OptionsBuilder().include(VirtioBlkBenchmark.class.getName()).build()).run();
    }
}
