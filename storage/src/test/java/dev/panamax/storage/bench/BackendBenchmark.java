package dev.panamax.storage.bench;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.ImageConverter;
import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
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
 * Random 4 KiB reads and writes through the qcow2 backend against the raw backend, on the same data
 * (a fully written 256 MiB disk, converted into each format from the same seed file). Report the ratio.
 * Run: {@code ./mvnw -B -q -pl storage test-compile exec:exec -Dbench=BackendBenchmark}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class BackendBenchmark {
    static final long SIZE = 256L << 20;
    static final int BLOCK = 4096;

    @Param({"raw", "qcow2"})
    public String format;

    private Path dir;
    private BlockBackend disk;
    private final ByteBuffer buf = ByteBuffer.allocate(BLOCK);

    @Setup(Level.Trial)
    public void setup() throws IOException {
        dir = Files.createTempDirectory("panamax-bench");
        Path raw = dir.resolve("seed.raw");
        byte[] chunk = new byte[1 << 20];
        Random r = new Random(1);
        try (var out = Files.newOutputStream(raw)) {
            for (long i = 0; i < SIZE; i += chunk.length) {
                r.nextBytes(chunk);
                out.write(chunk);
            }
        }
        // Both images are written the same way (by convert), so their files start in the same state.
        Path image = dir.resolve("disk." + format);
        ImageConverter.convert(raw, image, ImageConverter.Options.of(ImageFormat.parse(format)), null);
        Files.delete(raw);
        // Start with nothing under writeback, so that neither format pays for the setup's writes.
        dev.panamax.storage.ImageFile.syncFile(image);
        disk = Images.open(image, Images.OpenOptions.readWrite());
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        disk.close();
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) Files.delete(p);
        }
        Files.delete(dir);
    }

    private static long randomBlock() {
        return ThreadLocalRandom.current().nextLong(SIZE / BLOCK) * BLOCK;
    }

    @Benchmark
    public ByteBuffer randomRead4k() throws IOException {
        buf.clear();
        disk.read(randomBlock(), buf);
        return buf;
    }

    @Benchmark
    public ByteBuffer randomWrite4k() throws IOException {
        buf.clear();
        disk.write(randomBlock(), buf);
        return buf;
    }

    public static void main(String[] args) throws Exception {
        new Runner(new OptionsBuilder().include(BackendBenchmark.class.getName()).build()).run();
    }
}
