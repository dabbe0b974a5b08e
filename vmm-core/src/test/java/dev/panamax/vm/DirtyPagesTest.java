package dev.panamax.vm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bitmap a diff snapshot saves, read back with every field checked, and merges driven by it. */
class DirtyPagesTest {
    private static final long PAGE = 4096;
    /** 300 pages (more than one merge step) at 0, one page at 2 MiB, side by side in the file. */
    private static final MemoryMap MAP = new MemoryMap(List.of(new MemoryMap.Entry(0, 300 * PAGE, 0),
            new MemoryMap.Entry(0x200000, PAGE, 300 * PAGE)));

    @TempDir
    Path dir;

    private static DirtyPages pages(long[] first, long[] second) {
        return new DirtyPages(List.of(new DirtyPages.Range(0, 300 * PAGE, first), new DirtyPages.Range(0x200000, PAGE, second)));
    }

    private static StateReader state(StateWriter out) {
        return new StateReader(out.toByteArray(), "the snapshot");
    }

    /** A migration's last round: the pages the round before left unsent, and those written since. */
    @Test
    void orGivesThePagesWrittenInEitherAndLeavesBothAsTheyWere() {
        DirtyPages pending = pages(new long[] {1, 0, 0, 0, 0}, new long[] {0});
        DirtyPages since = pages(new long[] {2, 0, 0, 0, 1L << 43}, new long[] {1});
        DirtyPages both = pending.or(since);
        assertThat(both.range(0).bitmap()).containsExactly(3, 0, 0, 0, 1L << 43);
        assertThat(both.range(0x200000).bitmap()).containsExactly(1);
        assertThat(both.count()).isEqualTo(4);
        assertThat(pending.count() + since.count()).as("the operands, unchanged").isEqualTo(4);
        assertThatThrownBy(() -> both.range(0x1000)).isInstanceOf(IllegalArgumentException.class).hasMessage("no memory region at 0x1000");
    }

    @Test
    void theBitmapsRoundTripThroughTheirState() {
        DirtyPages pages = pages(new long[] {1, 0, 0, 0, 1L << 43}, new long[] {1});
        StateWriter out = new StateWriter();
        pages.saveState(out);
        StateReader in = state(out);

        DirtyPages read = DirtyPages.readState(in, MAP);

        in.end();
        assertThat(read.count()).isEqualTo(3);
        assertThat(read.isDirty(0)).isTrue();
        assertThat(read.isDirty(299 * PAGE + 5)).isTrue();
        assertThat(read.isDirty(298 * PAGE)).isFalse();
        assertThat(read.isDirty(0x200fff)).isTrue();
        assertThat(read.isDirty(0x201000)).as("outside every region").isFalse();
    }

    private static void refused(String message, StateWriter out) {
        assertThatThrownBy(() -> DirtyPages.readState(state(out), MAP)).isInstanceOf(StateFormatException.class)
                .hasMessageContaining(message);
    }

    @Test
    void bitmapsThatDoNotFitTheMemoryMapAreRefused() {
        refused("dirty page bitmap count is 3, more than the 2 allowed", new StateWriter().i32(3));
        refused("the dirty page bitmaps are 1, and the memory map has 2 regions", new StateWriter().i32(1));
        refused("dirty page bitmap 1 is for [0x300000, +0x1000), and memory region 1 is [0x200000, +0x1000)",
                new StateWriter().i32(2).i64(0).i64(300 * PAGE).i64s(new long[5]).i64(0x300000).i64(PAGE));
        refused("dirty page bitmap 0 word count is 6, more than the 5 allowed", new StateWriter().i32(2).i64(0).i64(300 * PAGE).i32(6));
        refused("dirty page bitmap 0 has 4 words; a region of 1228800 bytes needs 5",
                new StateWriter().i32(2).i64(0).i64(300 * PAGE).i64s(new long[4]));
        refused("dirty page bitmap 0 marks pages past the end of its region (300 pages)",
                new StateWriter().i32(2).i64(0).i64(300 * PAGE).i64s(new long[] {0, 0, 0, 0, 1L << 44}));
        refused("dirty page bitmap 1 word is cut off", new StateWriter().i32(2).i64(0).i64(300 * PAGE).i64s(new long[5])
                .i64(0x200000).i64(PAGE).i32(1));
    }

    @Test
    void aMergeCopiesExactlyTheMarkedPagesAcrossMergeSteps() throws IOException {
        byte[] diffBytes = new byte[(int) (301 * PAGE)];
        new Random(14).nextBytes(diffBytes);
        Path diff = Files.write(dir.resolve("diff"), diffBytes);
        byte[] baseBytes = new byte[diffBytes.length];
        Arrays.fill(baseBytes, (byte) 0x77);
        Path base = Files.write(dir.resolve("base"), baseBytes);
        long[] first = {-1L, -1L, -1L, -1L, (1L << 44) - 1};
        first[4] &= ~(1L << 34); // page 290 stays as the base has it; pages 0 to 289 are one run, longer than a merge step
        DirtyPages pages = pages(first, new long[] {1});

        MemoryFile.merge(diff, pages, MAP, base);

        byte[] merged = Files.readAllBytes(base);
        byte[] expected = diffBytes.clone();
        System.arraycopy(baseBytes, (int) (290 * PAGE), expected, (int) (290 * PAGE), (int) PAGE);
        assertThat(Arrays.mismatch(merged, expected)).as("first byte where the merge differs from the marked pages").isEqualTo(-1);
    }
}
