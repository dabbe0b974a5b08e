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
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * What one FUSE request costs on its way through {@link VirtioFs}, as a guest's {@code stat} with
 * {@code cache=none} sends them, one at a time: a GETATTR of the share's root made available on the
 * request queue, a notification, and the driver asleep until the used-ring interrupt ({@code
 * virtioGetattr}: the device thread's wake-up, the chain's pop and copies, the used ring, the
 * interrupt, the driver's wake-up). {@code serverGetattr} is the same request handed straight to
 * {@link FuseServer}: the difference is the transport's share. {@code jit} as in {@link
 * FuseServerBenchmark}: C1 only as the rig's JVMs run, then tiered. Run pinned to one core, as a
 * guest's vCPU and the device thread share one in the rig:
 * {@code taskset -c 0 ./mvnw -B -q -pl virtio test-compile exec:exec -Dbench=VirtioFsBenchmark}
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class VirtioFsBenchmark {
    static final int QUEUE_SIZE = 64;
    static final int REQUESTS = 1; // the request queue (0 is hiprio)
    static final int GETATTR_IN = 16;
    static final int REPLY = 16 + 104; // fuse_out_header, fuse_attr_out
    static final int HEADER = FuseServerBenchmark.HEADER;
    static final int INIT = FuseServerBenchmark.INIT;
    static final int GETATTR = FuseServerBenchmark.GETATTR;
    // Guest-physical layout: the request queue's rings, then the request and reply buffers.
    static final long DESC = 0x1000;
    static final long AVAIL = 0x2000;
    static final long USED = 0x3000;
    static final long REQUEST = 0x10000;
    static final long REPLY_AT = 0x11000;

    private Path share;
    private GuestMemory memory;
    private VirtioFs fs;
    private FuseServer server;
    private final Arena arena = Arena.ofConfined();
    private MemorySegment directRequest;
    private MemorySegment directReply;
    private volatile Thread driverThread;
    private int availIdx;
    private long unique = 1;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        share = Files.createTempDirectory("panamax-virtio-fs-bench");
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(1 << 20));
        fs = new VirtioFs("bench", "bench", share, true, CacheMode.NONE, QUEUE_SIZE);
        driverThread = Thread.currentThread();
        BenchDevices.connectWaking(fs, memory, driverThread);
        for (int q = 0; q < VirtioFs.QUEUE_COUNT; q++) { // the hiprio queue stays empty, but a driver readies both
            QueueSettings s = fs.queue(q);
            s.setSize(QUEUE_SIZE);
            s.setDescTable(DESC + 0x4000L * q);
            s.setAvailRing(AVAIL + 0x4000L * q);
            s.setUsedRing(USED + 0x4000L * q);
            s.setReady(true);
        }
        fs.setStatus(fs.status() | VirtioDevice.DRIVER_OK);
        // Request queue: descriptor 0 the request (readable), 1 the reply (writable); the same chain each time.
        descriptor(0, REQUEST, HEADER + 64, 1, 1);
        descriptor(1, REPLY_AT, 4096, 2, 0);
        header(INIT, 1, 64);
        memory.writeInt(REQUEST + HEADER, 7); // major
        memory.writeInt(REQUEST + HEADER + 4, 31); // minor
        memory.writeInt(REQUEST + HEADER + 8, 128 * 1024); // max_readahead
        expectOk(roundTrip(), "INIT");
        descriptor(0, REQUEST, HEADER + GETATTR_IN, 1, 1);
        descriptor(1, REPLY_AT, REPLY, 2, 0);
        header(GETATTR, 1, GETATTR_IN);
        memory.write(REQUEST + HEADER, new byte[GETATTR_IN]);
        expectOk(roundTrip(), "GETATTR");

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

    private void descriptor(int index, long address, int length, int flags, int next) {
        long at = DESC + 0x4000L * REQUESTS + 16L * index;
        memory.writeLong(at, address);
        memory.writeInt(at + 8, length);
        memory.writeShort(at + 12, (short) flags);
        memory.writeShort(at + 14, (short) next);
    }

    private void header(int opcode, long nodeId, int bodyBytes) {
        memory.writeInt(REQUEST, HEADER + bodyBytes);
        memory.writeInt(REQUEST + 4, opcode);
        memory.writeLong(REQUEST + 8, unique);
        memory.writeLong(REQUEST + 16, nodeId);
    }

    /** Makes the chain at descriptor 0 available, notifies, and sleeps until the device used it; returns the used length. */
    private int roundTrip() {
        long ring = AVAIL + 0x4000L * REQUESTS;
        long used = USED + 0x4000L * REQUESTS;
        memory.writeLong(REQUEST + 8, unique++);
        memory.writeShort(ring + 4 + 2L * (availIdx % QUEUE_SIZE), (short) 0);
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

    private int expectOk(int length, String what) {
        if (length < 16 || memory.readInt(REPLY_AT + 4) != 0) {
            throw new IllegalStateException(what + " failed: used length " + length + ", error "
                    + (length >= 16 ? memory.readInt(REPLY_AT + 4) : 0));
        }
        return length;
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        fs.close();
        server.close();
        arena.close();
        memory.close();
        Files.delete(share);
    }

    /** One GETATTR through the request queue, notification to interrupt. */
    @Benchmark
    public int virtioGetattr() {
        return expectOk(roundTrip(), "GETATTR");
    }

    /** The same GETATTR handed straight to a server on the same folder. */
    @Benchmark
    public int serverGetattr() {
        return directReply.get(U32, 0) + server.handle(directRequest, directReply);
    }

    public static void main(String[] args) throws Exception {
        for (String jit : new String[] {"-XX:TieredStopAtLevel=1", "-XX:+TieredCompilation"}) {
            new Runner(new OptionsBuilder().include(VirtioFsBenchmark.class.getName()).jvmArgsAppend(jit).build()).run();
        }
    }
}
