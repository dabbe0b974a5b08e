package dev.panamax.storage.qcow2;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.QemuImg;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The metadata caches (L2 tables, refcount blocks) stay within their budget however large the image,
 * and an image whose caches are as small as allowed, evicting all the time, reads and writes exactly
 * like one whose caches hold everything.
 */
class MetadataCacheTest {
    @TempDir
    Path dir;

    private static Qcow2Image open(Path p, boolean writable, Qcow2Image.CacheBudget budget) throws IOException {
        ImageFile file = ImageFile.open(p, writable);
        file.setDurable(false); // what is measured here is memory, not durability
        try {
            return Qcow2Image.open(file, null, false, budget);
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    private static void assertWithinBudget(Qcow2Image q, Qcow2Image.CacheBudget budget) {
        assertThat(q.l2Cache().budgetBytes()).isEqualTo(budget.l2TableBytes());
        assertThat(q.refcountCache().budgetBytes()).isEqualTo(budget.refcountBlockBytes());
        assertThat(q.l2Cache().residentBytes()).as("L2 tables in memory").isLessThanOrEqualTo(budget.l2TableBytes());
        assertThat(q.refcountCache().residentBytes()).as("refcount blocks in memory")
                .isLessThanOrEqualTo(budget.refcountBlockBytes());
    }

    /** The most either cache ever held, also in the middle of a request, is within its budget. */
    private static void assertPeaksWithinBudget(Qcow2Image q, Qcow2Image.CacheBudget budget) {
        assertThat(q.l2Cache().peakResidentBytes()).as("peak of L2 tables in memory")
                .isLessThanOrEqualTo(budget.l2TableBytes());
        assertThat(q.refcountCache().peakResidentBytes()).as("peak of refcount blocks in memory")
                .isLessThanOrEqualTo(budget.refcountBlockBytes());
    }

    @Test
    void oneTebibyteImageKeepsItsMetadataWithinTheBudget() throws Exception {
        Path p = dir.resolve("big.qcow2");
        long size = 1L << 40;
        int cs = 4096;
        // 64-bit refcounts: a refcount block covers only 512 clusters (2 MiB of file), so the 50 MiB
        // this test writes already need many more blocks than the cache may hold.
        Qcow2Image.create(p, CreateOptions.of(ImageFormat.QCOW2, size).withClusterSize(cs).withRefcountBits(64));
        Qcow2Image.CacheBudget budget = new Qcow2Image.CacheBudget(16L * cs, 4L * cs);
        int touches = 4096;
        long stride = size / touches; // 256 MiB: every write lands in its own L2 table (one maps 2 MiB)
        Map<Long, byte[]> written = new HashMap<>();
        Random rnd = new Random(11);
        try (Qcow2Image q = open(p, true, budget)) {
            for (int i = 0; i < touches; i++) {
                long off = i * stride + rnd.nextInt((int) stride - 5000);
                byte[] b = new byte[1 + rnd.nextInt(5000)];
                rnd.nextBytes(b);
                q.write(off, ByteBuffer.wrap(b));
                written.put(off, b);
                assertWithinBudget(q, budget);
            }
            q.flush();
            assertReadsBack(q, written, rnd, budget);
            assertThat(Qcow2Check.check(q).problems()).as("check").isEmpty(); // walks every table and block once more
            assertWithinBudget(q, budget);
            assertPeaksWithinBudget(q, budget);

            long l2Tables = touches, refcountBlocks = (q.fileSize() + cs * 512L - 1) / (cs * 512L);
            assertThat(l2Tables).as("L2 tables used").isGreaterThan(100 * budget.l2TableBytes() / cs);
            assertThat(refcountBlocks).as("refcount blocks used").isGreaterThan(5 * budget.refcountBlockBytes() / cs);
            // Writing, reading back and checking each went through all of them.
            assertThat(q.l2Cache().evictions()).isGreaterThan(2L * touches);
            assertThat(q.refcountCache().evictions()).isGreaterThan(2 * refcountBlocks);
        }
        try (Qcow2Image q = open(p, false, budget)) {
            assertReadsBack(q, written, rnd, budget);
            assertPeaksWithinBudget(q, budget);
        }
        assertThat(Files.size(p)).as("a sparse file of a few dozen MiB").isLessThan(100L << 20);
    }

    /** Reads every write back, in random order, and the bytes right around it (never written: zeros). */
    private static void assertReadsBack(Qcow2Image q, Map<Long, byte[]> written, Random rnd,
            Qcow2Image.CacheBudget budget) throws IOException {
        List<Long> offsets = new ArrayList<>(written.keySet());
        Collections.shuffle(offsets, rnd);
        for (long off : offsets) {
            byte[] expected = written.get(off);
            byte[] got = new byte[expected.length + 200];
            q.read(off - 100, ByteBuffer.wrap(got));
            assertThat(Arrays.copyOfRange(got, 100, 100 + expected.length)).as("data at %d", off).isEqualTo(expected);
            assertThat(Arrays.copyOf(got, 100)).as("before %d", off).containsOnly(0);
            assertThat(Arrays.copyOfRange(got, 100 + expected.length, got.length)).as("after %d", off).containsOnly(0);
            assertWithinBudget(q, budget);
        }
    }

    /**
     * Random writes, zeroes, discards, compressed writes, snapshots and reopens, with both caches at
     * their minimum (four clusters), checked against a model of the disk after every step group and
     * by check and qemu-img check at the end. Small clusters make many tables and blocks.
     */
    @Test
    void smallestCachesBehaveLikeLargeOnes() throws Exception {
        for (int cs : new int[] {512, 4096}) {
            for (boolean lazy : new boolean[] {false, true}) {
                runWithSmallestCaches(cs, lazy, new Random(cs + (lazy ? 1 : 0)));
            }
        }
    }

    private void runWithSmallestCaches(int cs, boolean lazy, Random rnd) throws Exception {
        Path p = dir.resolve("small-" + cs + (lazy ? "-lazy" : "") + ".qcow2");
        int size = 24 << 20;
        Qcow2Image.create(p, CreateOptions.of(ImageFormat.QCOW2, size).withClusterSize(cs).withLazyRefcounts(lazy));
        Qcow2Image.CacheBudget smallest = new Qcow2Image.CacheBudget(0, 0);
        Qcow2Image.CacheBudget effective = new Qcow2Image.CacheBudget(MetadataCache.MIN_ENTRIES * cs,
                MetadataCache.MIN_ENTRIES * cs);
        byte[] model = new byte[size];
        Map<String, byte[]> snapshots = new HashMap<>();
        Qcow2Image q = open(p, true, smallest);
        try {
            for (int step = 0; step < 300; step++) {
                int op = rnd.nextInt(100);
                int len = 1 + rnd.nextInt(rnd.nextInt(8) == 0 ? 300_000 : 20_000);
                long off = rnd.nextInt(size - len);
                if (op < 55) {
                    byte[] b = new byte[len];
                    rnd.nextBytes(b);
                    q.write(off, ByteBuffer.wrap(b));
                    System.arraycopy(b, 0, model, (int) off, len);
                } else if (op < 65) {
                    q.writeZeroes(off, len);
                    Arrays.fill(model, (int) off, (int) off + len, (byte) 0);
                } else if (op < 75) {
                    q.discard(off, len);
                    Arrays.fill(model, (int) off, (int) off + len, (byte) 0);
                } else if (op < 82) {
                    long c = (long) rnd.nextInt(size / cs) * cs;
                    byte[] b = new byte[cs];
                    Arrays.fill(b, 0, rnd.nextInt(cs), (byte) rnd.nextInt(3));
                    q.writeCompressed(c, b, cs);
                    System.arraycopy(b, 0, model, (int) c, cs);
                } else if (op < 86) {
                    String name = "s" + step;
                    q.createSnapshot(name);
                    snapshots.put(name, model.clone());
                } else if (op < 89 && !snapshots.isEmpty()) {
                    String name = snapshots.keySet().stream().sorted().toList().get(rnd.nextInt(snapshots.size()));
                    if (rnd.nextBoolean()) {
                        q.applySnapshot(name);
                        model = snapshots.get(name).clone();
                    } else {
                        q.deleteSnapshot(name);
                        snapshots.remove(name);
                    }
                } else if (op < 94) {
                    q.flush();
                } else if (op < 96) {
                    q.close();
                    q = open(p, true, smallest);
                } else {
                    byte[] got = new byte[len];
                    q.read(off, ByteBuffer.wrap(got));
                    assertThat(Arrays.mismatch(got, Arrays.copyOfRange(model, (int) off, (int) off + len)))
                            .as("read at %d+%d after step %d", off, len, step).isEqualTo(-1);
                }
                assertWithinBudget(q, effective);
                if (step % 50 == 49) assertSameAsModel(q, model, "cluster size " + cs + ", step " + step);
            }
            assertPeaksWithinBudget(q, effective);
            assertThat(q.l2Cache().evictions() + q.refcountCache().evictions()).isPositive();
        } finally {
            q.close();
        }
        try (Qcow2Image r = open(p, false, smallest)) {
            assertSameAsModel(r, model, "cluster size " + cs + " after reopening");
            assertThat(Qcow2Check.check(r).problems()).as("check").isEmpty();
        }
        QemuImg.img("check", "-f", "qcow2", p.toString()).expectSuccess("qemu-img check");
    }

    private static void assertSameAsModel(Qcow2Image q, byte[] model, String when) throws IOException {
        byte[] all = new byte[model.length];
        q.read(0, ByteBuffer.wrap(all));
        assertThat(Arrays.mismatch(all, model)).as("first differing byte, %s", when).isEqualTo(-1);
    }
}
