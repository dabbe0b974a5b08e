package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.storage.image.ImageCommit;
import dev.panamax.storage.image.ImageConverter;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.qcow2.Qcow2Check;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Interop with QEMU: images qemu-img/qemu-io write (snapshots, compressed clusters, backing chains,
 * VHD) read back identically through Panamax, and images Panamax changes pass qemu-img check and read
 * the same in QEMU.
 */
class QemuInteropTest {
    @TempDir
    Path dir;

    /** What QEMU reads from an image (or one of its snapshots), as raw bytes. */
    private byte[] qemuRead(Path image, String format, String snapshot) throws IOException {
        Path out = dir.resolve("qemu-view-" + System.nanoTime() + ".raw");
        if (snapshot == null) {
            QemuImg.img("convert", "-f", format, "-O", "raw", image.toString(), out.toString()).expectSuccess("qemu-img convert");
        } else {
            QemuImg.img("convert", "-f", format, "-l", "snapshot.name=" + snapshot, "-O", "raw", image.toString(),
                    out.toString()).expectSuccess("qemu-img convert snapshot");
        }
        byte[] b = Files.readAllBytes(out);
        Files.delete(out);
        return b;
    }

    private static byte[] panamaxRead(Path image) throws IOException {
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly())) {
            return Disks.readAll(disk);
        }
    }

    private static void assertSame(byte[] panamax, byte[] qemu, String what) {
        assertThat(panamax.length).as(what + " size").isEqualTo(qemu.length);
        assertThat(Arrays.mismatch(panamax, qemu)).as(what + ": first differing byte").isEqualTo(-1);
    }

    private static void qemuCheckClean(Path image) throws IOException {
        QemuImg.Result r = QemuImg.img("check", "-f", "qcow2", image.toString());
        assertThat(r.status()).as("qemu-img check:\n" + r.out() + r.err()).isZero();
    }

    private void scribble(Path image, String format, int seed) throws IOException {
        long size;
        try (BlockBackend d = Images.open(image, Images.OpenOptions.readOnly().withFormat(ImageFormat.parse(format)))) {
            size = d.size();
        }
        Random rnd = new Random(seed);
        String[] cmds = new String[12];
        for (int i = 0; i < cmds.length; i++) {
            long off = (long) rnd.nextInt((int) size - 300 * 512) / 512 * 512;
            int len = (1 + rnd.nextInt(300)) * 512;
            cmds[i] = rnd.nextInt(6) == 0 ? "write -z " + off + " " + len
                    : "write -P 0x" + Integer.toHexString(1 + rnd.nextInt(255)) + " " + off + " " + len;
        }
        QemuImg.io(format, image, cmds).expectSuccess("qemu-io");
    }

    @Test
    void qemuSnapshotsReadApplyAndDelete() throws Exception {
        for (String compat : new String[] {"1.1", "0.10"}) {
            Path img = dir.resolve("snap-" + compat + ".qcow2");
            QemuImg.img("create", "-f", "qcow2", "-o", "compat=" + compat + ",cluster_size=4096", img.toString(), "32M")
                    .expectSuccess("create");
            scribble(img, "qcow2", 1);
            QemuImg.img("snapshot", "-c", "one", img.toString()).expectSuccess("snapshot one");
            scribble(img, "qcow2", 2);
            QemuImg.img("snapshot", "-c", "two", img.toString()).expectSuccess("snapshot two");
            scribble(img, "qcow2", 3);
            byte[] one = qemuRead(img, "qcow2", "one"), two = qemuRead(img, "qcow2", "two");
            assertSame(panamaxRead(img), qemuRead(img, "qcow2", null), compat + " active");
            try (Qcow2Image q = (Qcow2Image) Images.open(img, Images.OpenOptions.readOnly())) {
                assertThat(q.snapshots()).extracting(s -> s.name()).containsExactly("one", "two");
                assertThat(Qcow2Check.check(q).problems()).isEmpty();
            }
            // Panamax reverts to "one", writes, deletes "two": QEMU agrees on everything afterwards.
            try (Qcow2Image q = (Qcow2Image) Images.open(img, Images.OpenOptions.readWrite())) {
                q.applySnapshot("one");
                assertSame(Disks.readAll(q), one, compat + " after apply");
                q.write(5000, ByteBuffer.wrap(new byte[] {1, 2, 3}));
                q.deleteSnapshot("two");
            }
            qemuCheckClean(img);
            byte[] expected = one.clone();
            expected[5000] = 1;
            expected[5001] = 2;
            expected[5002] = 3;
            assertSame(qemuRead(img, "qcow2", null), expected, compat + " active after panamax changes");
            assertSame(qemuRead(img, "qcow2", "one"), one, compat + " snapshot one kept");
            assertThat(two).isNotEqualTo(one);
        }
    }

    @Test
    void panamaxSnapshotsAreSeenByQemu() throws Exception {
        Path img = dir.resolve("p.qcow2");
        Images.create(img, CreateOptions.of(ImageFormat.QCOW2, 16 << 20).withClusterSize(8192));
        byte[] a = new byte[16 << 20];
        new Random(5).nextBytes(a);
        try (Qcow2Image q = (Qcow2Image) Images.open(img, Images.OpenOptions.readWrite())) {
            q.write(0, ByteBuffer.wrap(a));
            q.createSnapshot("first");
            q.write(1 << 20, ByteBuffer.wrap(new byte[3 << 20]));
            q.discard(8 << 20, 1 << 20);
            q.createSnapshot("second");
            q.writeZeroes(0, 4096);
        }
        qemuCheckClean(img);
        assertSame(qemuRead(img, "qcow2", "first"), a, "snapshot first");
        byte[] second = a.clone();
        Arrays.fill(second, 1 << 20, 4 << 20, (byte) 0);
        Arrays.fill(second, 8 << 20, 9 << 20, (byte) 0);
        assertSame(qemuRead(img, "qcow2", "second"), second, "snapshot second");
        byte[] active = second.clone();
        Arrays.fill(active, 0, 4096, (byte) 0);
        assertSame(qemuRead(img, "qcow2", null), active, "active");
        String list = QemuImg.img("snapshot", "-l", img.toString()).expectSuccess("list").out();
        assertThat(list).contains("first", "second");
    }

    @Test
    void compressedClustersBothWays() throws Exception {
        Path raw = dir.resolve("src.raw");
        byte[] data = new byte[20 << 20];
        Random rnd = new Random(9);
        for (int i = 0; i < data.length; i += 4096) { // compressible: repeated short patterns, some random
            if (rnd.nextInt(4) == 0) {
                byte[] chunk = new byte[4096];
                rnd.nextBytes(chunk);
                System.arraycopy(chunk, 0, data, i, 4096);
            } else {
                Arrays.fill(data, i, i + 4096, (byte) rnd.nextInt(3));
            }
        }
        Files.write(raw, data);
        Path qc = dir.resolve("qemu-compressed.qcow2");
        QemuImg.img("convert", "-c", "-f", "raw", "-O", "qcow2", raw.toString(), qc.toString()).expectSuccess("convert -c");
        assertSame(panamaxRead(qc), data, "qemu-compressed image");
        // Overwrite parts of compressed clusters: copy on write out of the compressed data.
        try (BlockBackend q = Images.open(qc, Images.OpenOptions.readWrite())) {
            q.write(70000, ByteBuffer.wrap(new byte[] {9, 9, 9}));
            q.discard(1 << 20, 1 << 20);
        }
        qemuCheckClean(qc);
        data[70000] = data[70001] = data[70002] = 9;
        Arrays.fill(data, 1 << 20, 2 << 20, (byte) 0);
        assertSame(qemuRead(qc, "qcow2", null), data, "after overwriting compressed clusters");

        Path pc = dir.resolve("panamax-compressed.qcow2");
        ImageConverter.convert(qc, pc, ImageConverter.Options.of(ImageFormat.QCOW2).withCompress(true), null);
        qemuCheckClean(pc);
        QemuImg.img("compare", "-f", "qcow2", "-F", "qcow2", qc.toString(), pc.toString()).expectSuccess("compare");
        String info = QemuImg.img("check", pc.toString()).out();
        assertThat(info).containsPattern("[1-9][0-9.]*% compressed clusters");
        assertThat(Files.size(pc)).isLessThan(data.length / 2);
    }

    @Test
    void backingChainsWithRelativeAndAbsolutePaths() throws Exception {
        Path sub = Files.createDirectories(dir.resolve("a/b"));
        Path base = dir.resolve("a/base.raw");
        QemuImg.img("create", "-f", "raw", base.toString(), "24M").expectSuccess("base");
        scribble(base, "raw", 10);
        Path mid = sub.resolve("mid.qcow2"); // relative backing name across directories
        QemuImg.img("create", "-f", "qcow2", "-b", "../base.raw", "-F", "raw", mid.toString()).expectSuccess("mid");
        scribble(mid, "qcow2", 11);
        Path vhdBase = dir.resolve("other.vhd");
        Path top = dir.resolve("top.qcow2"); // absolute backing name, larger than its backing file
        QemuImg.img("create", "-f", "qcow2", "-b", mid.toAbsolutePath().toString(), "-F", "qcow2", top.toString(), "32M")
                .expectSuccess("top");
        scribble(top, "qcow2", 12);
        Path top2 = dir.resolve("top2.qcow2"); // no backing format recorded: probed
        QemuImg.img("create", "-f", "qcow2", "-b", "top.qcow2", "-F", "qcow2", top2.toString()).expectSuccess("top2");
        scribble(top2, "qcow2", 13);
        assertSame(panamaxRead(top2), qemuRead(top2, "qcow2", null), "4-level chain");

        // Panamax writes to the top; convert flattens; commit merges one level down.
        try (BlockBackend d = Images.open(top2, Images.OpenOptions.readWrite())) {
            d.write(3 << 20, ByteBuffer.wrap(new byte[100000]));
            d.writeZeroes(20 << 20, 1 << 20);
        }
        qemuCheckClean(top2);
        byte[] view = qemuRead(top2, "qcow2", null);
        assertSame(panamaxRead(top2), view, "after panamax writes");
        Path flat = dir.resolve("flat.qcow2");
        ImageConverter.convert(top2, flat, ImageConverter.Options.of(ImageFormat.QCOW2), null);
        qemuCheckClean(flat);
        assertSame(qemuRead(flat, "qcow2", null), view, "flattened");
        ImageCommit.commit(top2, null);
        qemuCheckClean(top);
        assertSame(qemuRead(top, "qcow2", null), view, "committed into top");
        assertSame(qemuRead(top2, "qcow2", null), view, "overlay after commit");
        assertThat(Files.exists(vhdBase)).isFalse();
    }

    @Test
    void qemuVhdImagesReadIdentically() throws Exception {
        for (String subformat : new String[] {"dynamic", "fixed"}) {
            Path vhd = dir.resolve(subformat + ".vhd");
            QemuImg.img("create", "-f", "vpc", "-o", "subformat=" + subformat, vhd.toString(), "30M").expectSuccess("create");
            scribble(vhd, "vpc", 20);
            assertSame(panamaxRead(vhd), qemuRead(vhd, "vpc", null), subformat + " vhd");
            try (BlockBackend d = Images.open(vhd, Images.OpenOptions.readWrite())) {
                d.write(7 << 20, ByteBuffer.wrap(new byte[] {5, 6, 7}));
            }
            byte[] mine = panamaxRead(vhd);
            assertSame(qemuRead(vhd, "vpc", null), mine, subformat + " vhd after panamax write");
            Path copy = dir.resolve(subformat + "-copy.vhd");
            Files.copy(vhd, copy, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    @Test
    void convertBetweenAllFormatsMatchesQemu() throws Exception {
        Path src = dir.resolve("src.qcow2");
        QemuImg.img("create", "-f", "qcow2", src.toString(), "40M").expectSuccess("create");
        scribble(src, "qcow2", 30);
        byte[] expected = qemuRead(src, "qcow2", null);
        Path prev = src;
        for (ImageFormat f : new ImageFormat[] {ImageFormat.RAW, ImageFormat.VHD, ImageFormat.QCOW2}) {
            Path out = dir.resolve("out-" + f.id());
            ImageConverter.convert(prev, out, ImageConverter.Options.of(f), null);
            QemuImg.img("compare", "-f", prev == src ? "qcow2" : Images.probe(prev).id(), "-F", f.id(), prev.toString(),
                    out.toString()).expectSuccess("compare " + f);
            byte[] all = panamaxRead(out); // VHD rounds the size up to a disk geometry: the tail reads zeros
            assertThat(all.length).isGreaterThanOrEqualTo(expected.length);
            assertThat(Arrays.mismatch(Arrays.copyOfRange(all, expected.length, all.length),
                    new byte[all.length - expected.length])).isEqualTo(-1);
            assertSame(Arrays.copyOf(all, expected.length), expected, "converted to " + f);
            prev = out;
        }
        Path raw = dir.resolve("out-raw");
        assertThat(Files.size(raw)).isEqualTo(expected.length);
        try (RawImage r = RawImage.open(raw, false)) {
            assertThat(r.file().allocatedBytes()).as("raw output stays sparse").isLessThan(expected.length / 2);
        }
    }
}
