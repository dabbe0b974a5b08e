package dev.panamax.storage.bench;

import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.ImageConverter;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/**
 * {@code panamax image convert} (the library call it makes, in a warm JVM) against {@code qemu-img
 * convert} in the same run, on a 1 GiB raw image with about 40% of it written in 1 MiB runs:
 * raw->qcow2 and qcow2->raw, alternating rounds, median of nine each. Prints the times and the ratios.
 * Run: {@code ./mvnw -B -q -pl storage test-compile exec:exec -Dbench=ConvertBenchmark}
 */
public final class ConvertBenchmark {
    public static void main(String[] args) throws Exception {
        Path dir = Files.createTempDirectory("panamax-convert-bench");
        Path raw = dir.resolve("src.raw");
        Random r = new Random(1);
        byte[] mib = new byte[1 << 20];
        try (FileChannel ch = FileChannel.open(raw, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            for (int i = 0; i < 1024; i++) {
                if (r.nextInt(10) < 4) {
                    r.nextBytes(mib);
                    ch.write(ByteBuffer.wrap(mib), (long) i << 20);
                }
            }
            ch.truncate(1L << 30);
            if (ch.size() < (1L << 30)) ch.write(ByteBuffer.allocate(1), (1L << 30) - 1);
        }
        Path qcow2 = dir.resolve("src.qcow2");
        run(List.of("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw.toString(), qcow2.toString()));
        // Both without a final fsync (qemu-img's default, cache=unsafe; panamax --no-sync), then both with
        // one (qemu-img -t writeback; panamax's default). Rounds alternate which goes first; medians of nine.
        for (boolean sync : new boolean[] {false, true}) {
            List<String> cache = sync ? List.of("-t", "writeback") : List.of();
            Path q = dir.resolve("q.out"), p = dir.resolve("p.out");
            double[] toQcow2 = alternate(() -> run(concat(List.of("qemu-img", "convert", "-f", "raw", "-O", "qcow2"), cache,
                    List.of(raw.toString(), q.toString()))), q, () -> ImageConverter.convert(raw, p,
                    ImageConverter.Options.of(ImageFormat.QCOW2).withSync(sync), null), p);
            double[] toRaw = alternate(() -> run(concat(List.of("qemu-img", "convert", "-f", "qcow2", "-O", "raw"), cache,
                    List.of(qcow2.toString(), q.toString()))), q, () -> ImageConverter.convert(qcow2, p,
                    ImageConverter.Options.of(ImageFormat.RAW).withSync(sync), null), p);
            String mode = sync ? "with final fsync" : "no fsync";
            System.out.printf("raw->qcow2 (%s): panamax %.3f s, qemu-img %.3f s, ratio %.2f%n", mode, toQcow2[1], toQcow2[0],
                    toQcow2[1] / toQcow2[0]);
            System.out.printf("qcow2->raw (%s): panamax %.3f s, qemu-img %.3f s, ratio %.2f%n", mode, toRaw[1], toRaw[0],
                    toRaw[1] / toRaw[0]);
        }
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) Files.delete(p);
        }
        Files.delete(dir);
    }

    @SafeVarargs
    static List<String> concat(List<String>... parts) {
        List<String> all = new ArrayList<>();
        for (List<String> p : parts) all.addAll(p);
        return all;
    }

    interface Step {
        void run() throws Exception;
    }

    /**
     * Nine rounds of {@code a} and {@code b}, alternating which goes first (the output of each is deleted
     * before it runs); the median seconds of each, {@code {a, b}}. Panamax's JVM is warmed by a first,
     * untimed conversion: this measures the library call, not the JVM's start.
     */
    static double[] alternate(Step a, Path aOutput, Step b, Path bOutput) throws Exception {
        Files.deleteIfExists(bOutput);
        b.run();
        List<Double> as = new ArrayList<>(), bs = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            if (i % 2 == 0) {
                as.add(time(a, aOutput));
                bs.add(time(b, bOutput));
            } else {
                bs.add(time(b, bOutput));
                as.add(time(a, aOutput));
            }
        }
        Collections.sort(as);
        Collections.sort(bs);
        return new double[] {as.get(4), bs.get(4)};
    }

    private static double time(Step step, Path output) throws Exception {
        Files.deleteIfExists(output);
        long t0 = System.nanoTime();
        step.run();
        return (System.nanoTime() - t0) / 1e9;
    }

    static void run(List<String> cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).inheritIO().start();
        if (p.waitFor() != 0) throw new IllegalStateException(cmd + " failed");
    }
}
