package dev.panamax.virtio.bench;

import static dev.panamax.virtio.bench.FuseServerBenchmark.U32;
import static dev.panamax.virtio.bench.FuseServerBenchmark.U64;

import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.QueueSettings;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.fs.CacheMode;
import dev.panamax.virtio.fs.FuseServer;
import dev.panamax.virtio.fs.VirtioFs;
import dev.panamax.vm.GuestMemory;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What one FUSE request costs on its way through {@link VirtioFs}, as a guest's {@code stat} with
 * {@code cache=none} sends them, one at a time: a GETATTR of the share's root made available on the
 * request queue, a notification, and the driver asleep until the used-ring interrupt ({@code
 * virtioGetattr}: the device thread's wake-up, the chain's pop and copies, the used ring, the
 * interrupt, the driver's wake-up). {@code serverGetattr} is the same request handed straight to
 * {@link FuseServer}: the difference is the transport's share. {@code virtioRead1m} is a 1 MiB READ into 256
 * scattered guest pages (its descriptors in an indirect table), as {@code dd bs=1M} with {@code cache=none} sends them, against {@code readvRead1m}, the
 * same bytes read with one {@code readv} into 256 pages by the benchmark's thread. {@code jit} as in {@link
 * FuseServerBenchmark}: C1 only as the rig's JVMs run, then tiered. Run pinned to one core, as a
 * guest's vCPU and the device thread share one in the rig:
 * {@code taskset -c 0 ./mvnw -B -q -pl virtio test-compile exec:exec -Dbench=VirtioFsBenchmark} ({@code BENCH_JIT}
 * and {@code BENCH_ONLY}: {@link BenchDevices#runUnderEachCompiler}).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class VirtioFsBenchmark {
    static final int QUEUE_SIZE = 512; // room for a 1 MiB READ's chain: request, reply header, 256 pages
    static final int REQUESTS = 1; // the request queue (0 is hiprio)
    static final int GETATTR_IN = 16;
    static final int REPLY = 16 + 104; // fuse_out_header, fuse_attr_out
    static final int HEADER = FuseServerBenchmark.HEADER;
    static final int INIT = FuseServerBenchmark.INIT;
    static final int GETATTR = FuseServerBenchmark.GETATTR;
    static final int LOOKUP = FuseServerBenchmark.LOOKUP;
    static final int OPEN = 14;
    static final int READ = 15;
    static final int READ_IN = 40;
    static final int PAGE = 4096;
    static final int READ_PAGES = 256;
    /** Guest-physical layout: each queue's rings at QUEUE_STRIDE * (q + 1), then requests and replies, then the READ's pages. */
    static final long QUEUE_STRIDE = 0x10000;
    static final long REQUEST = 0x40000;
    static final long REPLY_AT = 0x41000;
    static final long READ_REQUEST = 0x42000;
    static final long READ_REPLY = 0x43000;
    static final long READ_TABLE = 0x44000;
    /** The READ's pages, a page apart from each other, as a guest's scattered ones. */
    static final long PAGES = 0x100000;
    /** The heads of the two chains on the request queue. */
    static final int SMALL_CHAIN = 0;
    static final int READ_CHAIN = 2;

    private Path share;
    private GuestMemory memory;
    private VirtioFs fs;
    private FuseServer server;
    private final Arena arena = Arena.ofConfined();
    private MemorySegment directRequest;
    private MemorySegment directReply;
    private FileChannel bigFile;
    private final ByteBuffer[] pages = new ByteBuffer[READ_PAGES];
    private volatile Thread driverThread;
    private int availIdx;
    private long unique = 1;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        share = Files.createTempDirectory("panamax-virtio-fs-bench");
        byte[] big = new byte[READ_PAGES * PAGE];
        new Random(1).nextBytes(big);
        Files.write(share.resolve("big"), big);
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(4 << 20));
        fs = new VirtioFs("bench", "bench", share, true, CacheMode.NONE, QUEUE_SIZE);
        driverThread = Thread.currentThread();
        BenchDevices.connectWaking(fs, memory, driverThread);
        for (int q = 0; q < VirtioFs.QUEUE_COUNT; q++) { // the hiprio queue stays empty, but a driver readies both
            QueueSettings s = fs.queue(q);
            s.setSize(QUEUE_SIZE);
            s.setDescTable(descTable(q));
            s.setAvailRing(availRing(q));
            s.setUsedRing(usedRing(q));
            s.setReady(true);
        }
        fs.setStatus(fs.status() | VirtioDevice.DRIVER_OK);
        // Request queue: descriptor 0 a small request (readable), 1 its reply (writable), the same chain each time.
        smallRequest(INIT, 1, 64, 4096);
        memory.writeInt(REQUEST + HEADER, 7); // major
        memory.writeInt(REQUEST + HEADER + 4, 31); // minor
        memory.writeInt(REQUEST + HEADER + 8, 128 * 1024); // max_readahead
        expectOk(roundTrip(SMALL_CHAIN, REQUEST), REPLY_AT, "INIT");
        smallRequest(LOOKUP, 1, 4, 4096);
        memory.write(REQUEST + HEADER, "big\0".getBytes(StandardCharsets.US_ASCII));
        expectOk(roundTrip(SMALL_CHAIN, REQUEST), REPLY_AT, "LOOKUP");
        long bigNode = memory.readLong(REPLY_AT + 16);
        smallRequest(OPEN, bigNode, 8, 4096);
        memory.writeLong(REQUEST + HEADER, 0); // O_RDONLY
        expectOk(roundTrip(SMALL_CHAIN, REQUEST), REPLY_AT, "OPEN");
        long fh = memory.readLong(REPLY_AT + 16);
        smallRequest(GETATTR, 1, GETATTR_IN, REPLY);
        memory.write(REQUEST + HEADER, new byte[GETATTR_IN]);
        expectOk(roundTrip(SMALL_CHAIN, REQUEST), REPLY_AT, "GETATTR");
        // Descriptor 2: a READ of the whole file as Linux frames one, in an indirect table (Linux's driver puts
        // every chain of more than one buffer in one): request, reply header, a buffer per page.
        descriptor(descTable(REQUESTS), READ_CHAIN, READ_TABLE, 16 * (READ_PAGES + 2), 4, 0);
        descriptor(READ_TABLE, 0, READ_REQUEST, HEADER + READ_IN, 1, 1);
        descriptor(READ_TABLE, 1, READ_REPLY, 16, 2 | 1, 2);
        for (int i = 0; i < READ_PAGES; i++) {
            boolean last = i == READ_PAGES - 1;
            descriptor(READ_TABLE, 2 + i, PAGES + 2L * PAGE * i, PAGE, last ? 2 : 2 | 1, last ? 0 : 3 + i);
        }
        header(READ_REQUEST, READ, bigNode, READ_IN);
        memory.writeLong(READ_REQUEST + HEADER, fh);
        memory.writeLong(READ_REQUEST + HEADER + 8, 0); // offset
        memory.writeInt(READ_REQUEST + HEADER + 16, READ_PAGES * PAGE);
        expectOk(roundTrip(READ_CHAIN, READ_REQUEST), READ_REPLY, "READ");
        byte[] got = new byte[PAGE];
        memory.read(PAGES + 2L * PAGE * 7, got, 0, PAGE);
        if (!Arrays.equals(got, Arrays.copyOfRange(big, 7 * PAGE, 8 * PAGE))) {
            throw new IllegalStateException("the READ put the wrong bytes into the guest's pages");
        }
        bigFile = FileChannel.open(share.resolve("big"));
        for (int i = 0; i < READ_PAGES; i++) {
            pages[i] = ByteBuffer.allocateDirect(PAGE);
        }

        server = new FuseServer(share, true, CacheMode.NONE);
        directReply = arena.allocate(4096, 8);
        MemorySegment init = directRequest(INIT, 64);
        init.set(U32, HEADER, 7);
        init.set(U32, HEADER + 4, 31);
        init.set(U32, HEADER + 8, 128 * 1024);
        server.handle(init, directReply);
        directRequest = directRequest(GETATTR, GETATTR_IN);
        if (server.handle(directRequest, directReply) != REPLY || directReply.get(U32, 4) != 0) {
            throw new IllegalStateException("the server's own GETATTR failed: error " + directReply.get(U32, 4));
        }
    }

    /** A request of {@code opcode} on the root with a zeroed body of {@code bodyBytes}, for the server alone. */
    private MemorySegment directRequest(int opcode, int bodyBytes) {
        MemorySegment r = arena.allocate(HEADER + bodyBytes, 8);
        r.set(U32, 0, HEADER + bodyBytes);
        r.set(U32, 4, opcode);
        r.set(U64, 8, 1);
        r.set(U64, 16, 1);
        return r;
    }

    private static long descTable(int q) {
        return QUEUE_STRIDE * (q + 1);
    }

    private static long availRing(int q) {
        return descTable(q) + 0x2000;
    }

    private static long usedRing(int q) {
        return descTable(q) + 0x3000;
    }

    /** The small chain (descriptors 0 and 1) set up for a request of {@code opcode} with {@code bodyBytes} and room for {@code replyBytes}. */
    private void smallRequest(int opcode, long nodeId, int bodyBytes, int replyBytes) {
        descriptor(0, REQUEST, HEADER + bodyBytes, 1, 1);
        descriptor(1, REPLY_AT, replyBytes, 2, 0);
        header(REQUEST, opcode, nodeId, bodyBytes);
    }

    private void descriptor(int index, long address, int length, int flags, int next) {
        descriptor(descTable(REQUESTS), index, address, length, flags, next);
    }

    /** Descriptor {@code index} of the table at {@code table}: the request queue's, or an indirect one. */
    private void descriptor(long table, int index, long address, int length, int flags, int next) {
        long at = table + 16L * index;
        memory.writeLong(at, address);
        memory.writeInt(at + 8, length);
        memory.writeShort(at + 12, (short) flags);
        memory.writeShort(at + 14, (short) next);
    }

    private void header(long at, int opcode, long nodeId, int bodyBytes) {
        memory.writeInt(at, HEADER + bodyBytes);
        memory.writeInt(at + 4, opcode);
        memory.writeLong(at + 16, nodeId);
    }

    /**
     * Makes the chain at {@code head}, whose request is at {@code request}, available with a new unique, notifies,
     * and sleeps until the device used it; returns the used length.
     */
    private int roundTrip(int head, long request) {
        long ring = availRing(REQUESTS);
        long used = usedRing(REQUESTS);
        memory.writeLong(request + 8, unique++);
        memory.writeShort(ring + 4 + 2L * (availIdx % QUEUE_SIZE), (short) head);
        availIdx = (availIdx + 1) & 0xffff;
        memory.writeShort(ring + 4 + 2L * QUEUE_SIZE, (short) (availIdx - 1)); // used_event: interrupt at this one
        VarHandle.releaseFence();
        memory.writeShort(ring + 2, (short) availIdx);
        VarHandle.fullFence();
        fs.notifyEvent(REQUESTS).signal();
        while (Short.toUnsignedInt(memory.readShort(used + 2)) != availIdx) {
            if (fs.failure() != null) {
                throw new IllegalStateException(fs.failure());
            }
            LockSupport.park();
        }
        VarHandle.acquireFence();
        return memory.readInt(used + 4 + 8L * (((availIdx - 1) & 0xffff) % QUEUE_SIZE) + 4);
    }

    private int expectOk(int length, long reply, String what) {
        if (length < 16 || memory.readInt(reply + 4) != 0) {
            throw new IllegalStateException(what + " failed: used length " + length + ", error "
                    + (length >= 16 ? memory.readInt(reply + 4) : 0));
        }
        return length;
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        fs.close();
        server.close();
        bigFile.close();
        Files.delete(share.resolve("big"));
        arena.close();
        memory.close();
        Files.delete(share);
    }

    /** One GETATTR through the request queue, notification to interrupt. */
    @Benchmark
    public int virtioGetattr() {
        return expectOk(roundTrip(SMALL_CHAIN, REQUEST), REPLY_AT, "GETATTR");
    }

    /** The same GETATTR handed straight to a server on the same folder. */
    @Benchmark
    public int serverGetattr() {
        return directReply.get(U32, 0) + server.handle(directRequest, directReply);
    }

    /** A READ of 1 MiB through the request queue into 256 scattered guest pages, as a guest's {@code dd bs=1M} with {@code cache=none}. */
    @Benchmark
    public int virtioRead1m() {
        return expectOk(roundTrip(READ_CHAIN, READ_REQUEST), READ_REPLY, "READ");
    }

    /** The same 1 MiB read by this thread with one readv into 256 pages: the copy, without the device. */
    @Benchmark
    public long readvRead1m() throws IOException {
        for (ByteBuffer p : pages) {
            p.clear();
        }
        bigFile.position(0);
        return bigFile.read(pages);
    }

    public static void main(String[] args) throws Exception {
        BenchDevices.runUnderEachCompiler(VirtioFsBenchmark.class);
    }
}
