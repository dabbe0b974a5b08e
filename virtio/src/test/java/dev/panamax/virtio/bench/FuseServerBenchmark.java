package dev.panamax.virtio.bench;

import dev.panamax.virtio.fs.CacheMode;
import dev.panamax.virtio.fs.FuseServer;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
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
 * The virtio-fs server's cost for what {@code stat} of a file costs a guest with {@code cache=none}:
 * a LOOKUP of a known file in its directory and a GETATTR of the node, handed to {@link FuseServer}
 * as the device hands them (no queue, no guest). {@code jit} picks the JVM's compilers: {@code c1}
 * as the rig's JVMs run, {@code tiered} as on a host with hardware KVM. Run pinned to one core:
 * {@code taskset -c 0 ./mvnw -B -q -pl virtio test-compile exec:exec -Dbench=FuseServerBenchmark}
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class FuseServerBenchmark {
    static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final int FILES = 100;
    static final int HEADER = 40;
    static final int LOOKUP = 1;
    static final int GETATTR = 3;
    static final int INIT = 26;

    private Path share;
    private FuseServer server;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment[] lookups = new MemorySegment[FILES];
    private MemorySegment getattr;
    private MemorySegment reply;
    private int next;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        share = Files.createTempDirectory("panamax-fuse-bench");
        for (int i = 0; i < FILES; i++) {
            Files.writeString(share.resolve("f" + i), "file " + i + "\n");
        }
        server = new FuseServer(share, true, CacheMode.NONE);
        reply = arena.allocate(64 * 1024, 8);
        MemorySegment init = request(INIT, 1, 64);
        init.set(U32, HEADER, 7);
        init.set(U32, HEADER + 4, 31);
        init.set(U32, HEADER + 8, 128 * 1024);
        expectOk(server.handle(init, reply), "INIT");
        for (int i = 0; i < FILES; i++) {
            byte[] name = ("f" + i).getBytes(StandardCharsets.US_ASCII);
            lookups[i] = request(LOOKUP, 1, name.length + 1);
            MemorySegment.copy(name, 0, lookups[i], ValueLayout.JAVA_BYTE, HEADER, name.length);
        }
        getattr = request(GETATTR, 0, 16);
    }

    /** A request of {@code opcode} on {@code nodeId} with a zeroed body of {@code bodyBytes}. */
    private MemorySegment request(int opcode, long nodeId, int bodyBytes) {
        MemorySegment r = arena.allocate(HEADER + bodyBytes, 8);
        r.set(U32, 0, HEADER + bodyBytes);
        r.set(U32, 4, opcode);
        r.set(U64, 8, 1);
        r.set(U64, 16, nodeId);
        return r;
    }

    private void expectOk(int length, String what) {
        if (length < 16 || reply.get(U32, 4) != 0) {
            throw new IllegalStateException(what + " failed: length " + length + ", error " + (length >= 16 ? reply.get(U32, 4) : 0));
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        server.close();
        arena.close();
        try (Stream<Path> files = Files.walk(share)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    /** One file's LOOKUP and GETATTR; the forget that balances the lookup count comes in a batch, as the guest's do. */
    @Benchmark
    public long lookupAndGetattr() {
        MemorySegment lookup = lookups[next];
        next = (next + 1) % FILES;
        expectOk(server.handle(lookup, reply), "LOOKUP");
        long node = reply.get(U64, 16);
        getattr.set(U64, 16, node);
        expectOk(server.handle(getattr, reply), "GETATTR");
        return reply.get(U64, 16 + 16); // fuse_attr_out's inode
    }

    public static void main(String[] args) throws Exception {
        BenchDevices.runUnderEachCompiler(FuseServerBenchmark.class);
    }
}
