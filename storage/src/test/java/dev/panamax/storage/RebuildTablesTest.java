package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.image.ImageChecker.RebuildOptions;
import dev.panamax.storage.image.ImageChecker.RebuildResult;
import dev.panamax.storage.image.Images;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code repair --rebuild-tables} on qemu-img's images of the pattern with destroyed tables: what the
 * rule of {@link dev.panamax.storage.qcow2.Qcow2Rebuild} recovers, exactly, and outputs that pass
 * {@code qemu-img check}; the damaged original is never changed.
 */
class RebuildTablesTest {
    @TempDir
    Path dir;

    private static final byte[] PATTERN = DamagedImages.pattern();
    /** Clusters of 4 KiB the pattern fills: all but every third. */
    private static final long DATA_CLUSTERS = DamagedImages.SIZE / DamagedImages.CLUSTER
            - DamagedImages.SIZE / DamagedImages.CLUSTER / 3;

    @Test
    void zeroedRefcountTableIsRebuiltFromTheTables() throws Exception {
        Path image = DamagedImages.qcow2(dir, "refcounts.qcow2", null);
        zeroRefcountTable(image);
        byte[] damaged = Files.readAllBytes(image);
        Path out = dir.resolve("rebuilt.qcow2");
        RebuildResult r = ImageChecker.rebuildTables(image, new RebuildOptions(out, null, null));
        assertThat(r.tables().tablesFound()).isEqualTo(4);
        assertThat(r.tables().keptByL1()).isEqualTo(4);
        assertThat(r.tables().orphans()).isEmpty();
        assertThat(r.tables().droppedL1()).isEmpty();
        assertThat(r.tables().clustersMapped()).isEqualTo(DATA_CLUSTERS);
        assertThat(r.after().isClean()).as(r.after().problems().toString()).isTrue();
        assertThat(Files.readAllBytes(image)).as("the original is left as it was").isEqualTo(damaged);
        assertRecovered(out, PATTERN);
    }

    /**
     * 64 KiB clusters: the 8 MiB disk is one L2 range, so with the L1 table (and the refcount table)
     * zeroed the one table found goes to the one slot. In place, the original kept as IMAGE.damaged.
     */
    @Test
    void zeroedL1OfASingleRangeImageIsRecoveredWhole() throws Exception {
        Path image = dir.resolve("l1.qcow2");
        QemuImg.img("convert", "-f", "raw", "-O", "qcow2", DamagedImages.patternRaw(dir).toString(), image.toString())
                .expectSuccess("qemu-img convert");
        DamagedImages.zero(image, DamagedImages.l1Offset(image), 8);
        zeroRefcountTable(image);
        byte[] damaged = Files.readAllBytes(image);
        RebuildResult r = ImageChecker.rebuildTables(image, new RebuildOptions(null, null, null));
        assertThat(r.original()).isEqualTo(dir.resolve("l1.qcow2.damaged"));
        assertThat(Files.readAllBytes(r.original())).isEqualTo(damaged);
        assertThat(r.tables().tablesFound()).isEqualTo(1);
        assertThat(r.tables().keptByL1()).isZero();
        assertThat(r.tables().placed()).isEqualTo(1);
        assertThat(r.tables().orphans()).isEmpty();
        assertThat(r.after().isClean()).as(r.after().problems().toString()).isTrue();
        assertRecovered(image, PATTERN);
    }

    /** An overwritten L1 entry is dropped; its table is then the one orphan, and its slot the one free: put back. */
    @Test
    void overwrittenL1EntryGetsItsTableBack() throws Exception {
        Path image = DamagedImages.overwrittenL1Entry(dir).image();
        Path out = dir.resolve("rebuilt.qcow2");
        RebuildResult r = ImageChecker.rebuildTables(image, new RebuildOptions(out, null, null));
        assertThat(r.tables().droppedL1()).singleElement().asString().contains("L1 entry 1 (0x8000000000001234)");
        assertThat(r.tables().keptByL1()).isEqualTo(3);
        assertThat(r.tables().placed()).isEqualTo(1);
        assertThat(r.tables().clustersMapped()).isEqualTo(DATA_CLUSTERS);
        assertRecovered(out, PATTERN);
    }

    /**
     * Four L2 ranges and the L1 table zeroed: four tables for four slots, which the file cannot tell
     * apart. None is guessed: each is an orphan, and its file holds exactly one 2 MiB range of the pattern.
     */
    @Test
    void orphansAreReportedAndWrittenOutNotGuessed() throws Exception {
        Path image = DamagedImages.qcow2(dir, "orphans.qcow2", null);
        DamagedImages.zero(image, DamagedImages.l1Offset(image), 32);
        Path out = dir.resolve("rebuilt.qcow2"), orphans = dir.resolve("orphans");
        RebuildResult r = ImageChecker.rebuildTables(image, new RebuildOptions(out, null, orphans));
        assertThat(r.tables().placed()).isZero();
        assertThat(r.tables().orphans()).hasSize(4);
        assertThat(r.tables().clustersOrphaned()).isEqualTo(DATA_CLUSTERS);
        assertThat(r.tables().clustersMapped()).isZero();
        assertThat(r.after().isClean()).as(r.after().problems().toString()).isTrue();
        Set<Integer> ranges = new HashSet<>();
        for (var o : r.tables().orphans()) {
            byte[] data = Files.readAllBytes(o.file());
            assertThat(data.length).isEqualTo((int) DamagedImages.L2_SPAN);
            for (int range = 0; range < 4; range++) {
                int from = range * (int) DamagedImages.L2_SPAN;
                if (Arrays.equals(data, Arrays.copyOfRange(PATTERN, from, from + data.length))) ranges.add(range);
            }
        }
        assertThat(ranges).containsExactlyInAnyOrder(0, 1, 2, 3);
        assertRecovered(out, new byte[PATTERN.length]);
    }

    @Test
    void refusesImagesWithSnapshotsAndExistingBackups() throws Exception {
        Path image = DamagedImages.qcow2(dir, "snap.qcow2", null);
        Path backup = dir.resolve("snap.qcow2.damaged");
        Files.write(backup, new byte[] {1});
        assertThatThrownBy(() -> ImageChecker.rebuildTables(image, new RebuildOptions(null, null, null)))
                .hasMessageContaining("snap.qcow2.damaged").hasMessageContaining("already exists");
        QemuImg.img("snapshot", "-c", "s1", image.toString()).expectSuccess("qemu-img snapshot");
        assertThatThrownBy(() -> ImageChecker.rebuildTables(image, new RebuildOptions(dir.resolve("o.qcow2"), null, null)))
                .isInstanceOf(InvalidImageException.class).hasMessageContaining("1 internal snapshots");
        assertThat(dir.resolve("o.qcow2")).as("no output that is only a copy of the damaged image").doesNotExist();
    }

    private static void zeroRefcountTable(Path image) throws Exception {
        long table = DamagedImages.getLong(image, 48);
        int clusters = (int) (DamagedImages.getLong(image, 56) >>> 32);
        int cs = 1 << (int) (DamagedImages.getLong(image, 20) >>> 32);
        DamagedImages.zero(image, table, clusters * cs);
    }

    /** The rebuilt image reads as {@code expected} through Panamax and qemu-img, and qemu-img check finds nothing. */
    private void assertRecovered(Path image, byte[] expected) throws Exception {
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly())) {
            ByteBuffer b = ByteBuffer.allocate((int) disk.size());
            disk.read(0, b);
            assertThat(Arrays.mismatch(b.array(), expected)).as("first differing byte").isEqualTo(-1);
        }
        QemuImg.img("check", image.toString()).expectSuccess("qemu-img check of the rebuilt image");
        Path raw = dir.resolve("expected.raw");
        Files.write(raw, expected);
        QemuImg.Result cmp = QemuImg.img("compare", "-F", "raw", image.toString(), raw.toString());
        assertThat(cmp.status()).as(cmp.out() + cmp.err()).isZero();
    }
}
