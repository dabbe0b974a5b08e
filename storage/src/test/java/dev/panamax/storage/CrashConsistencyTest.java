package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.qcow2.Qcow2Check;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A child JVM ({@link CrashWriter}) writes to a qcow2 image and is killed with SIGKILL at a random
 * moment, 50 times. Afterwards check must find no corruption (leaks are allowed, and repair must
 * remove them) and every operation flushed before the kill must read back intact. With lazy
 * refcounts (every fifth trial) the stale refcounts are rebuilt when the image is opened for writing.
 */
class CrashConsistencyTest {
    static final int TRIALS = 50;
    static final long SIZE = 6 << 20;

    @TempDir
    Path dir;

    @Test
    void killedWriterLeavesConsistentImage() throws Exception {
        long seed = Long.getLong("panamax.seed", 77L);
        Random rnd = new Random(seed);
        int leakyTrials = 0;
        for (int trial = 0; trial < TRIALS; trial++) {
            long childSeed = rnd.nextLong();
            int delayMs = 30 + rnd.nextInt(400);
            boolean lazy = trial % 5 == 4;
            try {
                leakyTrials += runTrial(trial, childSeed, delayMs, lazy) ? 1 : 0;
            } catch (Throwable t) {
                throw new AssertionError("trial " + trial + " failed (test seed " + seed + ", child seed " + childSeed
                        + ", kill after " + delayMs + " ms, lazy refcounts " + lazy + ", child's last lines " + lastLines + "): " + t, t);
            }
        }
        System.out.println("crash test: " + TRIALS + " kills, " + leakyTrials + " left leaked clusters (repaired)");
    }

    private String lastLines = "";

    /** Returns true when the kill left leaks. */
    private boolean runTrial(int trial, long childSeed, int delayMs, boolean lazy) throws Exception {
        Path image = dir.resolve("crash-" + trial + ".qcow2");
        Images.create(image, CreateOptions.of(ImageFormat.QCOW2, SIZE).withClusterSize(trial % 2 == 0 ? 4096 : 65536)
                .withLazyRefcounts(lazy));
        String java = ProcessHandle.current().info().command().orElse("java");
        Path out = dir.resolve("child-" + trial + ".out"); // a file, not a pipe: nothing is lost or buffered here
        Process child = new ProcessBuilder(java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto",
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                CrashWriter.class.getName(), image.toString(), Long.toString(childSeed))
                .redirectOutput(out.toFile()).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (Files.size(out) == 0 && child.isAlive() && System.nanoTime() < deadline) Thread.sleep(5);
        assertThat(Files.size(out)).as("child started").isPositive();
        Thread.sleep(delayMs);
        child.destroyForcibly(); // SIGKILL
        assertThat(child.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(child.exitValue()).as("child was killed, not crashed").isEqualTo(137);
        List<String> lines = Files.readAllLines(out);
        long flushed = 0;
        for (String l : lines) if (l.startsWith("F ")) flushed = Long.parseLong(l.substring(2));
        lastLines = String.valueOf(lines.subList(Math.max(0, lines.size() - 3), lines.size()));

        if (lazy) { // opening for writing rebuilds the refcounts a lazy image did not keep
            Images.open(image, Images.OpenOptions.readWrite()).close();
        }
        boolean leaked;
        try (Qcow2Image q = (Qcow2Image) Images.open(image, Images.OpenOptions.readOnly())) {
            CheckReport report = Qcow2Check.check(q);
            assertThat(report.corruptions()).as("corruptions: %s", report.problems()).isZero();
            leaked = report.leaks() > 0;
            verifyFlushedData(q, childSeed, flushed, "after the crash");
        }
        ImageChecker.RepairResult repaired = ImageChecker.repair(image);
        assertThat(repaired.after().problems()).as("after repair").isEmpty();
        try (BlockBackend d = Images.open(image, Images.OpenOptions.readOnly())) {
            verifyFlushedData(d, childSeed, flushed, "after repair");
        }
        if (trial % 10 == 0) {
            QemuImg.Result r = QemuImg.img("check", image.toString());
            assertThat(r.status()).as("qemu-img check after repair: " + r.out()).isZero();
        }
        return leaked;
    }

    /** Which operations wrote which value to one byte, to tell a lost write from a stray one. */
    private static String history(long seed, int at, long flushed) {
        StringBuilder s = new StringBuilder();
        for (long i = 0; i < flushed + 4 * CrashWriter.FLUSH_EVERY; i++) {
            CrashWriter.Op op = CrashWriter.op(seed, i, SIZE);
            if (at < op.offset() || at >= op.offset() + op.length()) continue;
            byte v = op.kind() == CrashWriter.Op.WRITE ? op.data()[(int) (at - op.offset())] : 0;
            s.append(" #").append(i).append(op.kind() == CrashWriter.Op.WRITE ? "=" : " zeroed=").append(v);
        }
        return s.toString();
    }

    /**
     * Operations [0, flushed) are durable: replay them into a model. The next FLUSH_EVERY operations may
     * or may not have happened (partially, even), so their byte ranges are excluded from the comparison.
     */
    private static void verifyFlushedData(BlockBackend disk, long seed, long flushed, String when) throws Exception {
        byte[] model = new byte[(int) SIZE];
        for (long i = 0; i < flushed; i++) {
            CrashWriter.Op op = CrashWriter.op(seed, i, SIZE);
            if (op.kind() == CrashWriter.Op.WRITE) {
                System.arraycopy(op.data(), 0, model, (int) op.offset(), op.length());
            } else {
                Arrays.fill(model, (int) op.offset(), (int) op.offset() + op.length(), (byte) 0);
            }
        }
        BitSet uncertain = new BitSet((int) SIZE);
        for (long i = flushed; i < flushed + CrashWriter.FLUSH_EVERY; i++) {
            CrashWriter.Op op = CrashWriter.op(seed, i, SIZE);
            uncertain.set((int) op.offset(), (int) (op.offset() + op.length()));
        }
        byte[] disk0 = Disks.readAll(disk);
        for (int i = 0; i < SIZE; i++) {
            if (!uncertain.get(i) && disk0[i] != model[i]) {
                throw new AssertionError("byte " + i + " differs " + when + ": " + disk0[i] + " instead of " + model[i]
                        + " (" + flushed + " operations were flushed); operations touching it: " + history(seed, i, flushed));
            }
        }
    }
}
