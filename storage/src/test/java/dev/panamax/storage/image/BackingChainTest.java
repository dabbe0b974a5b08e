package dev.panamax.storage.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.Disks;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.QemuImg;
import dev.panamax.storage.image.BackingChain.Chain;
import dev.panamax.storage.image.BackingChain.Link;
import dev.panamax.storage.image.BackingChain.State;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@link BackingChain} on chains qemu-img and Panamax make, whole, moved, looped, mislabelled and hostile. */
class BackingChainTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private static void qemuImg(String... args) throws IOException {
        QemuImg.img(args).expectSuccess("qemu-img " + String.join(" ", args));
    }

    private static BackingChain.Options search(Path... dirs) {
        return BackingChain.Options.of(null, List.of(dirs));
    }

    private static List<State> states(Chain c) {
        return c.links().stream().map(Link::state).toList();
    }

    /** A raw base of random bytes, a qcow2 overlay with one partial-cluster write (so it stores copied base data), and its data. */
    private byte[] baseAndOverlay(Path base, Path overlay) throws IOException {
        byte[] data = new byte[4 * MIB];
        new Random(5).nextBytes(data);
        Files.write(base, data);
        qemuImg("create", "-f", "qcow2", "-b", base.getFileName().toString(), "-F", "raw", overlay.toString());
        QemuImg.io("qcow2", overlay, "write -P 0x5a 69632 4096").expectSuccess("qemu-io write"); // inside cluster 1
        Arrays.fill(data, 69632, 69632 + 4096, (byte) 0x5a);
        return data;
    }

    @Test
    void wholeChainOfThreeMadeByQemuImg() throws Exception {
        qemuImg("create", "-f", "raw", dir.resolve("base.raw").toString(), "4M");
        qemuImg("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", dir.resolve("mid.qcow2").toString());
        qemuImg("create", "-f", "qcow2", "-b", dir.resolve("mid.qcow2").toString(), "-F", "qcow2", dir.resolve("top.qcow2").toString());

        Chain c = BackingChain.walk(dir.resolve("top.qcow2"), search());
        assertThat(c.whole()).isTrue();
        assertThat(states(c)).containsExactly(State.OK, State.OK, State.OK);
        Link top = c.links().get(0), mid = c.links().get(1), base = c.links().get(2);
        assertThat(top.name()).isNull();
        assertThat(top.format()).isEqualTo(ImageFormat.QCOW2);
        assertThat(mid.name()).as("an absolute name as written").isEqualTo(dir.resolve("mid.qcow2").toString());
        assertThat(mid.recordedFormat()).isEqualTo("qcow2");
        assertThat(base.name()).as("a relative name as written").isEqualTo("base.raw");
        assertThat(base.path()).isEqualTo(dir.resolve("base.raw"));
        assertThat(base.recordedFormat()).isEqualTo("raw");
        assertThat(base.format()).isEqualTo(ImageFormat.RAW);
        assertThat(c.links()).allSatisfy(l -> {
            assertThat(l.virtualSize()).isEqualTo(4 * MIB);
            assertThat(l.notes()).isEmpty();
        });
    }

    @Test
    void wholeChainMadeByPanamax() throws Exception {
        Images.create(dir.resolve("base.qcow2"), CreateOptions.of(ImageFormat.QCOW2, 2 * MIB));
        Images.create(dir.resolve("mid.qcow2"), CreateOptions.of(ImageFormat.QCOW2, -1).withBacking("base.qcow2", null));
        Images.create(dir.resolve("top.qcow2"), CreateOptions.of(ImageFormat.QCOW2, -1).withBacking("mid.qcow2", ImageFormat.QCOW2));
        Chain c = BackingChain.walk(dir.resolve("top.qcow2"), search());
        assertThat(states(c)).containsExactly(State.OK, State.OK, State.OK);
        assertThat(c.links().get(2).recordedFormat()).as("Panamax records the format it detected").isEqualTo("qcow2");
        String qemu = QemuImg.img("info", "--backing-chain", dir.resolve("top.qcow2").toString()).expectSuccess("info").out();
        assertThat(qemu).contains("image: " + dir.resolve("mid.qcow2"), "image: " + dir.resolve("base.qcow2"));
    }

    @Test
    void movedBaseIsFoundInASearchDirectoryAndFixed() throws Exception {
        Path base = dir.resolve("base.raw"), top = dir.resolve("top.qcow2");
        byte[] data = baseAndOverlay(base, top);
        Path moved = Files.createDirectory(dir.resolve("moved"));
        Files.move(base, moved.resolve("base.raw"));
        byte[] other = new byte[4 * MIB];
        new Random(6).nextBytes(other);
        Files.write(moved.resolve("other.raw"), other); // right format and size, wrong name and content
        Files.write(moved.resolve("small.raw"), new byte[MIB]);
        Files.write(moved.resolve("big.raw"), new byte[8 * MIB]); // larger than the overlay: not offered
        qemuImg("create", "-f", "qcow2", moved.resolve("base.qcow2").toString(), "4M"); // wrong format: not offered

        Chain c = BackingChain.walk(top, search(moved));
        assertThat(c.whole()).isFalse();
        assertThat(states(c)).containsExactly(State.OK, State.MISSING);
        Link missing = c.brokenLink();
        assertThat(missing.message()).contains(base.toString(), "does not exist");
        assertThat(missing.candidates()).extracting(BackingSearch.Candidate::path)
                .containsExactly(moved.resolve("base.raw"), moved.resolve("other.raw"), moved.resolve("small.raw"));
        BackingSearch.Candidate best = missing.candidates().getFirst();
        assertThat(best.sameName()).isTrue();
        assertThat(best.sampledClusters()).isEqualTo(1);
        assertThat(best.sharedClusters()).as("the copy-on-write copy of the base's cluster").isEqualTo(1);
        assertThat(missing.candidates().get(1).sharedClusters()).isZero();
        assertThat(best.backingName()).as("relative, as the lost name was").isEqualTo("moved/base.raw");
        assertThat(best.rebaseCommand()).isEqualTo("panamax image rebase -u -b moved/base.raw -F raw " + top);
        assertThat(best.reasons()).contains("same file name as recorded", "raw, as recorded",
                "same virtual size as the overlay (" + 4 * MIB + " bytes)");
        assertThat(missing.candidates().get(2).reasons()).anyMatch(r -> r.contains("smaller than the overlay's"));

        byte[] before = Files.readAllBytes(top);
        assertThat(BackingChain.walk(top, search(moved)).whole()).isFalse();
        assertThat(Files.readAllBytes(top)).isEqualTo(before);

        BackingChain.Mended m = BackingChain.mend(top, search(moved));
        assertThat(m.fixes()).hasSize(1);
        assertThat(m.fixes().getFirst().overlay()).isEqualTo(top);
        assertThat(m.after().whole()).isTrue();
        assertThat(m.after().links().get(1).path()).isEqualTo(moved.resolve("base.raw"));

        String qemu = QemuImg.img("info", "--backing-chain", top.toString()).expectSuccess("info").out();
        assertThat(qemu).contains("backing file: moved/base.raw", "backing file format: raw", "image: " + moved.resolve("base.raw"));
        try (BlockBackend disk = Images.open(top, Images.OpenOptions.readOnly())) {
            assertThat(Disks.readAll(disk)).isEqualTo(data);
        }
        Path converted = dir.resolve("converted.raw");
        qemuImg("convert", "-O", "raw", top.toString(), converted.toString());
        assertThat(Files.readAllBytes(converted)).as("QEMU reads the mended chain the same").isEqualTo(data);
    }

    @Test
    void twoCandidatesWithTheNameAreListedAndNothingIsChanged() throws Exception {
        Path base = dir.resolve("base.raw"), top = dir.resolve("top.qcow2");
        baseAndOverlay(base, top);
        Path a = Files.createDirectory(dir.resolve("a")), b = Files.createDirectory(dir.resolve("b"));
        Files.copy(base, a.resolve("base.raw"));
        Files.move(base, b.resolve("base.raw"));
        byte[] before = Files.readAllBytes(top);

        BackingChain.Mended m = BackingChain.mend(top, search(a, b));
        assertThat(m.fixes()).isEmpty();
        assertThat(m.after().whole()).isFalse();
        assertThat(m.after().brokenLink().candidates()).extracting(BackingSearch.Candidate::path)
                .containsExactlyInAnyOrder(a.resolve("base.raw"), b.resolve("base.raw"));
        assertThat(m.after().brokenLink().candidates()).allMatch(BackingSearch.Candidate::sameName);
        assertThat(Files.readAllBytes(top)).isEqualTo(before);
    }

    @Test
    void theOverlaysOwnDirectoryIsSearchedAndAnAbsoluteNameStaysAbsolute() throws Exception {
        Path sub = Files.createDirectory(dir.resolve("sub"));
        Path base = sub.resolve("disk.raw");
        Files.write(base, new byte[MIB]);
        Path top = dir.resolve("top.qcow2");
        qemuImg("create", "-f", "qcow2", "-b", base.toString(), "-F", "raw", top.toString());
        Files.move(base, dir.resolve("disk.raw"));

        BackingChain.Mended m = BackingChain.mend(top, search());
        assertThat(m.fixes()).hasSize(1);
        assertThat(m.fixes().getFirst().candidate().backingName()).isEqualTo(dir.resolve("disk.raw").toString());
        assertThat(m.after().whole()).isTrue();
    }

    @Test
    void aSymbolicLinkOutOfASearchDirectoryIsNotFollowed() throws Exception {
        Path base = dir.resolve("base.raw"), top = dir.resolve("top.qcow2");
        baseAndOverlay(base, top);
        Path elsewhere = Files.createDirectory(dir.resolve("elsewhere")), s = Files.createDirectory(dir.resolve("s"));
        Files.move(base, elsewhere.resolve("base.raw"));
        Files.createSymbolicLink(s.resolve("base.raw"), elsewhere.resolve("base.raw"));
        Chain c = BackingChain.walk(top, search(s));
        assertThat(c.brokenLink().state()).isEqualTo(State.MISSING);
        assertThat(c.brokenLink().candidates()).isEmpty();
        assertThat(BackingChain.mend(top, search(s)).fixes()).isEmpty();
    }

    @Test
    void cyclesAreNamed() throws Exception {
        Path top = dir.resolve("top.qcow2"), mid = dir.resolve("mid.qcow2");
        qemuImg("create", "-f", "qcow2", top.toString(), "1M");
        qemuImg("rebase", "-u", "-b", "top.qcow2", "-F", "qcow2", top.toString());
        Chain self = BackingChain.walk(top, search());
        assertThat(states(self)).containsExactly(State.OK, State.CYCLE);
        assertThat(self.brokenLink().message()).contains("is the image itself", "loops: " + top + " -> " + top);
        assertThat(QemuImg.img("info", "--backing-chain", top.toString()).status()).as("QEMU refuses it too").isNotZero();

        qemuImg("create", "-f", "qcow2", mid.toString(), "1M");
        qemuImg("rebase", "-u", "-b", "mid.qcow2", "-F", "qcow2", top.toString());
        try (Qcow2Image m = Qcow2Image.open(mid, true, null, false)) {
            m.setBackingFile("./top.qcow2", ImageFormat.QCOW2); // another name of the same file
        }
        Chain loop = BackingChain.walk(top, search());
        assertThat(states(loop)).containsExactly(State.OK, State.OK, State.CYCLE);
        assertThat(loop.brokenLink().message()).contains("loops: " + top + " -> " + mid + " -> " + dir.resolve("./top.qcow2"));
    }

    @Test
    void aQcow2BackingFileRecordedAsRawIsAWrongFormat() throws Exception {
        Path base = dir.resolve("base.qcow2"), top = dir.resolve("top.qcow2");
        qemuImg("create", "-f", "qcow2", base.toString(), "1M");
        qemuImg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "raw", top.toString(), "1M");
        Chain c = BackingChain.walk(top, search());
        assertThat(states(c)).containsExactly(State.OK, State.WRONG_FORMAT);
        Link wrong = c.brokenLink();
        assertThat(wrong.format()).isEqualTo(ImageFormat.QCOW2);
        assertThat(wrong.recordedFormat()).isEqualTo("raw");
        assertThat(wrong.message()).contains("records its backing file as raw, but " + base + " is a qcow2 image",
                "metadata", "panamax image rebase -u -b base.qcow2 -F qcow2 " + top);
    }

    @Test
    void aRawBackingFileRecordedAsQcow2IsAWrongFormat() throws Exception {
        Path base = dir.resolve("base.raw"), top = dir.resolve("top.qcow2");
        Files.write(base, new byte[MIB]);
        qemuImg("create", "-f", "qcow2", top.toString(), "1M");
        qemuImg("rebase", "-u", "-b", "base.raw", "-F", "qcow2", top.toString());
        Chain c = BackingChain.walk(top, search());
        assertThat(states(c)).containsExactly(State.OK, State.WRONG_FORMAT);
        assertThat(c.brokenLink().format()).isEqualTo(ImageFormat.RAW);
        assertThat(c.brokenLink().message()).contains("records its backing file as qcow2", "probes as raw", "refuse",
                "-F raw");
        assertThat(QemuImg.img("info", "--backing-chain", top.toString()).status()).as("QEMU refuses it").isNotZero();
    }

    @Test
    void noRecordedFormatIsANoteAndAnyReadableFormatIsACandidate() throws Exception {
        Path base = dir.resolve("base.raw"), top = dir.resolve("top.qcow2");
        Files.write(base, new byte[MIB]);
        Images.create(top, CreateOptions.of(ImageFormat.QCOW2, MIB));
        try (Qcow2Image q = Qcow2Image.open(top, true, null, false)) {
            q.setBackingFile("base.raw", null);
        }
        Chain c = BackingChain.walk(top, search());
        assertThat(states(c)).containsExactly(State.OK, State.OK);
        assertThat(c.links().get(1).notes()).singleElement().asString().contains("does not record its backing file's format",
                "-F raw");
        Path s = Files.createDirectory(dir.resolve("s"));
        Files.move(base, s.resolve("base.raw"));
        qemuImg("create", "-f", "qcow2", s.resolve("x.qcow2").toString(), "1M");
        assertThat(BackingChain.walk(top, search(s)).brokenLink().candidates()).extracting(BackingSearch.Candidate::format)
                .containsExactly(ImageFormat.RAW, ImageFormat.QCOW2);
        BackingChain.Mended m = BackingChain.mend(top, search(s));
        assertThat(m.fixes()).singleElement().extracting(f -> f.candidate().format()).isEqualTo(ImageFormat.RAW);
        assertThat(m.after().links().get(1).recordedFormat()).as("the fix records the format").isEqualTo("raw");
    }

    @Test
    void aSmallerBackingFileIsAWarningOnly() throws Exception {
        Files.write(dir.resolve("base.raw"), new byte[MIB]);
        qemuImg("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", dir.resolve("top.qcow2").toString(), "2M");
        Chain c = BackingChain.walk(dir.resolve("top.qcow2"), search());
        assertThat(states(c)).containsExactly(State.OK, State.SMALLER);
        assertThat(c.whole()).isTrue();
        assertThat(c.links().get(1).message()).contains("smaller than its overlay", "read as zeros");
    }

    @Test
    void aChainDeeperThanTheCapIsTooDeep() throws Exception {
        Images.create(dir.resolve("l0.qcow2"), CreateOptions.of(ImageFormat.QCOW2, MIB));
        for (int i = 1; i <= 5; i++) {
            Images.create(dir.resolve("l" + i + ".qcow2"),
                    CreateOptions.of(ImageFormat.QCOW2, -1).withBacking("l" + (i - 1) + ".qcow2", ImageFormat.QCOW2));
        }
        Chain c = BackingChain.walk(dir.resolve("l5.qcow2"), new BackingChain.Options(null, List.of(), 3));
        assertThat(states(c)).containsExactly(State.OK, State.OK, State.OK, State.OK, State.TOO_DEEP);
        assertThat(c.brokenLink().message()).contains("past 3 backing files");
        assertThat(BackingChain.walk(dir.resolve("l5.qcow2"), search()).whole()).isTrue();
    }

    @Test
    // a hang guard only, on a thread of its own: a thread blocked opening a FIFO ignores interrupts
    @Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void aFifoADirectoryAndDevicesAsBackingFilesAreNotOpened() throws Exception {
        Path fifo = dir.resolve("pipe");
        Process mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
        assertThat(mkfifo.waitFor()).isZero();
        Files.createDirectory(dir.resolve("adir"));
        Path top = dir.resolve("top.qcow2");
        Images.create(top, CreateOptions.of(ImageFormat.QCOW2, MIB));
        for (String[] c : new String[][] {{"pipe", "a FIFO (named pipe)"}, {"adir", "a directory"}, {"/dev/zero", "a character device"},
                {"/dev/null", "a character device"}}) {
            try (Qcow2Image q = Qcow2Image.open(top, true, null, false)) {
                q.setBackingFile(c[0], ImageFormat.RAW);
            }
            Chain chain = BackingChain.walk(top, search());
            assertThat(states(chain)).as(c[0]).containsExactly(State.OK, State.UNREADABLE);
            assertThat(chain.brokenLink().message()).as(c[0]).contains("is " + c[1] + ", not an image file");
        }

        // Opening the chain, and check, refuse it as well, by its type.
        try (Qcow2Image q = Qcow2Image.open(top, true, null, false)) {
            q.setBackingFile("pipe", ImageFormat.RAW);
        }
        assertThatThrownBy(() -> Images.open(top, Images.OpenOptions.readOnly())).isInstanceOf(InvalidImageException.class)
                .hasMessage("backing file " + fifo + " of " + top + " is a FIFO (named pipe), not an image file;"
                        + " it is not opened, as reading one waits for a writer");
        assertThat(ImageChecker.check(top).problems()).singleElement().asString().contains("is a FIFO (named pipe)");
        assertThatThrownBy(() -> Images.probe(fifo)).isInstanceOf(InvalidImageException.class).hasMessageStartingWith(fifo + " is a FIFO");

        // A FIFO in a search directory named as the missing file is passed over, not opened.
        Path s = Files.createDirectory(dir.resolve("s"));
        new ProcessBuilder("mkfifo", s.resolve("base.raw").toString()).start().waitFor();
        try (Qcow2Image q = Qcow2Image.open(top, true, null, false)) {
            q.setBackingFile("base.raw", ImageFormat.RAW);
        }
        Chain chain = BackingChain.walk(top, search(s));
        assertThat(chain.brokenLink().state()).isEqualTo(State.MISSING);
        assertThat(chain.brokenLink().candidates()).isEmpty();
    }

    @Test
    void aBackingNameOf64KiBMakesTheOverlayCorrupt() throws Exception {
        Path top = dir.resolve("top.qcow2");
        qemuImg("create", "-f", "qcow2", top.toString(), "1M");
        try (FileChannel ch = FileChannel.open(top, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(12).order(ByteOrder.BIG_ENDIAN).putLong(512).putInt(65536).flip();
            ch.write(b, 8); // backing_file_offset, backing_file_size
        }
        Chain c = BackingChain.walk(top, search());
        assertThat(states(c)).containsExactly(State.CORRUPT);
        assertThat(c.brokenLink().message()).contains("backing file name", "65536 bytes", "at most 1023 bytes");
    }

    @Test
    void aBackingNameWithANulByteMakesTheOverlayCorrupt() throws Exception {
        Path top = dir.resolve("top.qcow2");
        Qcow2Image.create(top, CreateOptions.of(ImageFormat.QCOW2, MIB).withBacking("base#raw", ImageFormat.RAW)); // recorded, not opened
        byte[] bytes = Files.readAllBytes(top);
        int at = indexOf(bytes, "base#raw".getBytes(StandardCharsets.US_ASCII));
        bytes[at + 4] = 0;
        Files.write(top, bytes);
        Chain c = BackingChain.walk(top, search());
        assertThat(states(c)).containsExactly(State.CORRUPT);
        assertThat(c.brokenLink().format()).isEqualTo(ImageFormat.QCOW2);
        assertThat(c.brokenLink().message()).isEqualTo(top + ": backing file name contains a NUL byte (byte 4 of 8)");
        assertThatThrownBy(() -> Images.open(top, Images.OpenOptions.readOnly())).as("opening the chain")
                .isInstanceOf(InvalidImageException.class).hasMessage(c.brokenLink().message());
    }

    @Test
    void anImageThatDoesNotExistOrASearchDirectoryThatIsNotOneIsRefused() throws Exception {
        assertThatThrownBy(() -> BackingChain.walk(dir.resolve("nothing.qcow2"), search()))
                .isInstanceOf(NoSuchFileException.class).hasMessageContaining("image file does not exist");
        Files.write(dir.resolve("file"), new byte[1]);
        assertThatThrownBy(() -> BackingChain.walk(dir.resolve("file"), search(dir.resolve("file"))))
                .isInstanceOf(ImageRequestException.class).hasMessage("search directory " + dir.resolve("file") + " is not a directory");
    }

    @Test
    void aCorruptLinkBelowIsReported() throws Exception {
        Path base = dir.resolve("base.qcow2"), top = dir.resolve("top.qcow2");
        qemuImg("create", "-f", "qcow2", base.toString(), "1M");
        qemuImg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top.toString());
        try (FileChannel ch = FileChannel.open(base, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(4).putInt(0, 40), 20); // cluster_bits 40
        }
        Chain c = BackingChain.walk(top, search());
        assertThat(states(c)).containsExactly(State.OK, State.CORRUPT);
        assertThat(c.brokenLink().message()).contains("cluster_bits 40");
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) continue outer;
            }
            return i;
        }
        throw new AssertionError("not found");
    }
}
