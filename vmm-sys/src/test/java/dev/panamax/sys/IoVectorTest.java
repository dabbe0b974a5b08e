package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Vectored positional I/O between a real file and ranges of native memory. */
class IoVectorTest {
    @TempDir
    Path dir;

    @Test
    void readsAFileIntoScatteredRangesMoreThanOneCallHolds() throws Exception {
        // 1,500 buffers of 3 bytes, every other 3 bytes of one mapping: two preadv calls (IOV_MAX is 1,024).
        byte[] content = new byte[4500];
        new Random(7).nextBytes(content);
        Files.write(dir.resolve("f"), content);
        try (Arena arena = Arena.ofConfined(); PathHandle root = PathHandle.openDirectory(dir);
                PathHandle f = root.lookup(FileName.of("f")); OpenFile file = f.reopen(FsAbi.O_RDONLY)) {
            MemorySegment mapping = arena.allocate(9000);
            IoVector vector = new IoVector(1500);
            for (int i = 0; i < 1500; i++) {
                vector.add(mapping, 6L * i, 3);
            }
            assertThat(vector.count()).isEqualTo(1500);
            assertThat(vector.bytes()).isEqualTo(4500);

            assertThat(file.read(0, vector)).isEqualTo(4500);

            for (int i = 0; i < 1500; i++) {
                for (int j = 0; j < 3; j++) {
                    assertThat(mapping.get(ValueLayout.JAVA_BYTE, 6L * i + j)).as("byte %d", 3 * i + j).isEqualTo(content[3 * i + j]);
                    assertThat(mapping.get(ValueLayout.JAVA_BYTE, 6L * i + 3 + j)).isZero();
                }
            }
            assertThat(vector.count()).as("a transfer empties the vector").isZero();
        }
    }

    @Test
    void aReadMeetingTheEndOfTheFileIsShortAndATruncatedVectorReadsOnlyItsBytes() throws Exception {
        Files.write(dir.resolve("f"), new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
        try (Arena arena = Arena.ofConfined(); PathHandle root = PathHandle.openDirectory(dir);
                PathHandle f = root.lookup(FileName.of("f")); OpenFile file = f.reopen(FsAbi.O_RDONLY)) {
            MemorySegment mapping = arena.allocate(64);
            IoVector vector = new IoVector(4);
            vector.add(mapping, 0, 4);
            vector.add(mapping, 8, 0); // adds nothing
            vector.add(mapping, 16, 4);
            vector.add(mapping, 32, 4);
            assertThat(vector.count()).isEqualTo(3);
            assertThat(file.read(4, vector)).as("6 bytes left from offset 4").isEqualTo(6);
            assertThat(mapping.asSlice(0, 4).toArray(ValueLayout.JAVA_BYTE)).containsExactly(5, 6, 7, 8);
            assertThat(mapping.asSlice(16, 4).toArray(ValueLayout.JAVA_BYTE)).containsExactly(9, 10, 0, 0);

            vector.add(mapping, 40, 4);
            vector.add(mapping, 48, 4);
            vector.truncate(5);
            assertThat(vector.count()).isEqualTo(2);
            assertThat(vector.bytes()).isEqualTo(5);
            assertThat(file.read(0, vector)).isEqualTo(5);
            assertThat(mapping.asSlice(40, 4).toArray(ValueLayout.JAVA_BYTE)).containsExactly(1, 2, 3, 4);
            assertThat(mapping.asSlice(48, 4).toArray(ValueLayout.JAVA_BYTE)).as("past the limit, untouched").containsExactly(5, 0, 0, 0);
        }
    }

    @Test
    void refusesRangesOutsideTheMappingMoreBuffersThanItHoldsAndHeapMemory() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mapping = arena.allocate(16);
            IoVector vector = new IoVector(1);
            assertThatThrownBy(() -> vector.add(mapping, 8, 9)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> vector.add(mapping, -1, 1)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> vector.add(MemorySegment.ofArray(new byte[16]), 0, 4)).isInstanceOf(IllegalArgumentException.class);
            vector.add(mapping, 0, 16);
            assertThatThrownBy(() -> vector.add(mapping, 0, 1)).isInstanceOf(IllegalStateException.class);
            assertThat(vector.count()).isEqualTo(1);
        }
    }

    @Test
    void refusesAMappingClosedAfterAnEarlierBufferOfIt() {
        IoVector vector = new IoVector(4);
        Arena arena = Arena.ofConfined();
        MemorySegment mapping = arena.allocate(64);
        vector.add(mapping, 0, 16);
        arena.close();
        assertThatThrownBy(() -> vector.add(mapping, 16, 16)).isInstanceOf(IllegalStateException.class).hasMessageContaining("no longer mapped");
        try (Arena other = Arena.ofConfined()) {
            MemorySegment second = other.allocate(32);
            vector.add(second, 8, 16);
            assertThatThrownBy(() -> vector.add(second, 24, 16)).as("checked against the second mapping's size").isInstanceOf(IndexOutOfBoundsException.class);
        }
        assertThat(vector.count()).isEqualTo(2);
        assertThat(vector.bytes()).isEqualTo(32);
    }
}
