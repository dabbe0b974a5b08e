package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.storage.image.ImageRebase;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.qcow2.Qcow2Check;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Sparseness, discard, concurrency and rebase, on real files. */
class BackendBehaviourTest {
    @TempDir
    Path dir;

    @Test
    void rawHolesStayHolesAndDiscardPunchesThem() throws Exception {
        Path p = dir.resolve("r.raw");
        Images.create(p, CreateOptions.of(ImageFormat.RAW, 16 << 20));
        try (RawImage r = RawImage.open(p, true)) {
            assertThat(r.file().allocatedBytes()).isZero();
            assertThat(r.extent(0, r.size())).isEqualTo(new Extent(0, 16 << 20, Extent.Kind.ZERO));
            byte[] data = new byte[4 << 20];
            Arrays.fill(data, (byte) 7);
            r.write(4 << 20, ByteBuffer.wrap(data));
            assertThat(r.file().allocatedBytes()).isEqualTo(4 << 20);
            assertThat(r.extent(4 << 20, 12 << 20).kind()).isEqualTo(Extent.Kind.DATA);
            r.discard(5 << 20, 2 << 20);
            assertThat(r.file().allocatedBytes()).isEqualTo(2 << 20);
            byte[] back = new byte[4 << 20];
            r.read(4 << 20, ByteBuffer.wrap(back));
            Arrays.fill(data, 1 << 20, 3 << 20, (byte) 0);
            assertThat(back).isEqualTo(data);
        }
    }

    @Test
    void qcow2DiscardGivesSpaceBackAndFreedClustersAreReused() throws Exception {
        Path p = dir.resolve("d.qcow2");
        Images.create(p, CreateOptions.of(ImageFormat.QCOW2, 64 << 20));
        byte[] data = new byte[32 << 20];
        new Random(1).nextBytes(data);
        try (Qcow2Image q = (Qcow2Image) Images.open(p, Images.OpenOptions.readWrite())) {
            q.write(0, ByteBuffer.wrap(data));
            q.flush();
            long full = q.allocatedBytes();
            q.discard(0, 32 << 20);
            q.flush();
            assertThat(q.allocatedBytes()).isLessThan(full - (30 << 20));
            long size = q.fileSize();
            q.write(0, ByteBuffer.wrap(data));
            q.flush();
            assertThat(q.fileSize()).as("freed clusters are reused, the file does not grow").isEqualTo(size);
            assertThat(Qcow2Check.check(q).problems()).isEmpty();
            assertThat(Arrays.copyOf(Disks.readAll(q), data.length)).isEqualTo(data);
        }
    }

    /** Several queues writing and reading at once: every request lands intact. */
    @Test
    void concurrentRequestsFromSeveralThreads() throws Exception {
        for (ImageFormat f : ImageFormat.values()) {
            if (f == ImageFormat.VHDX) continue; // read-only: Panamax does not create VHDX
            Path p = dir.resolve("c." + f.id());
            Images.create(p, CreateOptions.of(f, 32 << 20).withClusterSize(4096));
            int threads = 4;
            byte[][] expected = new byte[threads][];
            try (BlockBackend d = Images.open(p, Images.OpenOptions.readWrite());
                    ExecutorService pool = Executors.newFixedThreadPool(threads)) {
                List<Future<?>> jobs = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int id = t;
                    jobs.add(pool.submit(() -> {
                        // Thread t owns every 4th 64 KiB stripe; writes in random order and sizes.
                        Random r = new Random(id);
                        byte[] mine = new byte[8 << 20];
                        for (int i = 0; i < 400; i++) {
                            int stripe = r.nextInt(128);
                            int off = r.nextInt(65536 - 100), len = 1 + r.nextInt(65536 - off);
                            byte[] b = new byte[len];
                            r.nextBytes(b);
                            long disk = ((long) stripe * threads + id) * 65536 + off;
                            d.write(disk, ByteBuffer.wrap(b));
                            System.arraycopy(b, 0, mine, stripe * 65536 + off, len);
                            if (i % 50 == 0) d.flush();
                            byte[] check = new byte[len];
                            d.read(disk, ByteBuffer.wrap(check));
                            if (!Arrays.equals(check, b)) throw new AssertionError(f + ": read-back mismatch in thread " + id);
                        }
                        expected[id] = mine;
                        return null;
                    }));
                }
                for (Future<?> j : jobs) j.get();
            }
            try (BlockBackend d = Images.open(p, Images.OpenOptions.readOnly())) {
                byte[] all = Disks.readAll(d);
                for (int t = 0; t < threads; t++) {
                    for (int s = 0; s < 128; s++) {
                        int at = (s * threads + t) * 65536;
                        assertThat(Arrays.mismatch(Arrays.copyOfRange(all, at, at + 65536),
                                Arrays.copyOfRange(expected[t], s * 65536, (s + 1) * 65536))).as(f + " stripe").isEqualTo(-1);
                    }
                }
                if (d instanceof Qcow2Image q) assertThat(Qcow2Check.check(q).problems()).isEmpty();
            }
        }
    }

    @Test
    void safeRebaseKeepsTheContent() throws Exception {
        byte[] a = new byte[4 << 20], b = new byte[4 << 20];
        new Random(1).nextBytes(a);
        System.arraycopy(a, 0, b, 0, a.length);
        Arrays.fill(b, 1 << 20, 2 << 20, (byte) 5); // the new base differs in one MiB
        Files.write(dir.resolve("a.raw"), a);
        Files.write(dir.resolve("b.raw"), b);
        Path top = dir.resolve("top.qcow2");
        Images.create(top, CreateOptions.of(ImageFormat.QCOW2, 4 << 20).withBacking("a.raw", ImageFormat.RAW));
        try (BlockBackend d = Images.open(top, Images.OpenOptions.readWrite())) {
            d.write(100, ByteBuffer.wrap(new byte[] {1, 2, 3}));
        }
        byte[] before;
        try (BlockBackend d = Images.open(top, Images.OpenOptions.readOnly())) {
            before = Disks.readAll(d);
        }
        ImageRebase.rebase(top, "b.raw", null, false);
        try (Qcow2Image d = (Qcow2Image) Images.open(top, Images.OpenOptions.readOnly())) {
            assertThat(d.backingFileName()).isEqualTo("b.raw");
            assertThat(Disks.readAll(d)).isEqualTo(before);
            long stored = 0;
            for (long pos = 0; pos < d.size(); ) {
                Extent e = d.extent(pos, d.size() - pos);
                if (e.kind() == Extent.Kind.DATA) stored += e.length();
                pos = e.end();
            }
            assertThat(stored).as("only the differing MiB and the written cluster are copied").isEqualTo((1 << 20) + 65536);
        }
        QemuImg.img("check", top.toString()).expectSuccess("qemu-img check");
    }
}
