package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class MappedMemoryTest {
    @TempDir
    Path dir;

    /** Three pages: page i holds bytes of value i + 1. */
    private Path memoryFile() throws IOException {
        byte[] content = new byte[3 * 4096];
        for (int page = 0; page < 3; page++) {
            Arrays.fill(content, page * 4096, (page + 1) * 4096, (byte) (page + 1));
        }
        return Files.write(dir.resolve("memory"), content);
    }

    @ParameterizedTest(name = "eager={0}")
    @ValueSource(booleans = {false, true})
    void aFileMappingShowsTheFileAndKeepsWritesToItself(boolean eager) throws IOException {
        Path file = memoryFile();
        byte[] before = Files.readAllBytes(file);
        try (MappedMemory memory = MappedMemory.mapFile(file, 4096, 2 * 4096, eager)) {
            assertThat(memory.size()).isEqualTo(2 * 4096);
            assertThat(memory.segment().get(JAVA_BYTE, 0)).isEqualTo((byte) 2);
            assertThat(memory.segment().get(JAVA_BYTE, 2 * 4096 - 1)).isEqualTo((byte) 3);

            memory.segment().set(JAVA_LONG, 8, 0x1122334455667788L);

            assertThat(memory.segment().get(JAVA_LONG, 8)).isEqualTo(0x1122334455667788L);
        }
        assertThat(Arrays.mismatch(Files.readAllBytes(file), before)).as("first byte of the memory file changed by a write to its mapping")
                .isEqualTo(-1);
    }

    @Test
    void twoMappingsOfOneFileAreIndependent() throws IOException {
        Path file = memoryFile();
        try (MappedMemory first = MappedMemory.mapFile(file, 0, 3 * 4096, false);
                MappedMemory second = MappedMemory.mapFile(file, 0, 3 * 4096, true)) {
            first.segment().set(JAVA_BYTE, 100, (byte) 0x55);
            second.segment().set(JAVA_BYTE, 200, (byte) 0x66);

            assertThat(first.segment().get(JAVA_BYTE, 200)).isEqualTo((byte) 1);
            assertThat(second.segment().get(JAVA_BYTE, 100)).isEqualTo((byte) 1);
            assertThat(first.segment().get(JAVA_BYTE, 100)).isEqualTo((byte) 0x55);
            assertThat(second.segment().get(JAVA_BYTE, 200)).isEqualTo((byte) 0x66);
        }
    }

    @Test
    void aFileShorterThanTheMappingIsRefusedWithBothSizes() throws IOException {
        Path file = memoryFile();
        assertThatThrownBy(() -> MappedMemory.mapFile(file, 4096, 3 * 4096, false)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("is 12288 bytes, too short").hasMessageContaining("(it needs 16384)");
        assertThatThrownBy(() -> MappedMemory.mapFile(file, 4 * 4096, 4096, true)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("is 12288 bytes, too short");
    }

    @Test
    void unalignedOffsetsAndSizesAndMissingFilesAreRefused() throws IOException {
        Path file = memoryFile();
        assertThatThrownBy(() -> MappedMemory.mapFile(file, 100, 4096, false)).hasMessageContaining("offset must be a non-negative multiple");
        assertThatThrownBy(() -> MappedMemory.mapFile(file, 0, 100, false)).hasMessageContaining("size must be a positive multiple");
        assertThatThrownBy(() -> MappedMemory.mapFile(dir.resolve("absent"), 0, 4096, false)).isInstanceOf(NativeIoException.class)
                .hasMessageContaining("absent");
    }

    @Test
    void hugePageMemoryIsMappedFromHugetlbPagesAndUsable() throws IOException {
        try (HugePagePool pool = HugePagePool.reserve(HugePageSize.SIZE_2M, 2)) {
            try (MappedMemory memory = MappedMemory.hugePages(4L << 20, HugePageSize.SIZE_2M)) {
                memory.segment().set(JAVA_LONG, 0, 0x1122334455667788L);
                memory.segment().set(JAVA_LONG, (4L << 20) - 8, -1L);

                assertThat(memory.segment().get(JAVA_LONG, 0)).isEqualTo(0x1122334455667788L);
                assertThat(memory.segment().get(JAVA_LONG, (4L << 20) - 8)).isEqualTo(-1L);
                assertThat(memory.address() % (2L << 20)).isZero();
                assertThat(ProcSelf.kernelPageSize(memory.address())).isEqualTo("2048 kB");
                assertThat(HugePageSize.SIZE_2M.availablePages()).as("free pages once both are mapped and touched").isEqualTo(pool.before());
            }
        }
    }

    @Test
    void tooFewFreeHugePagesIsAnErrorNamingTheKnobAndTheCount() throws IOException {
        long available = HugePageSize.SIZE_2M.availablePages();
        long bytes = (available + 3) * (2L << 20);

        assertThatThrownBy(() -> HugePageSize.SIZE_2M.requireAvailable(bytes)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("needs " + (available + 3) + " free pages")
                .hasMessageContaining("echo " + (HugePageSize.SIZE_2M.reservedPages() + 3) + " > /proc/sys/vm/nr_hugepages");
        assertThatThrownBy(() -> MappedMemory.hugePages(bytes, HugePageSize.SIZE_2M)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("/proc/sys/vm/nr_hugepages");
    }

    @Test
    void hugePageMemoryMustBeAWholeNumberOfPages() {
        assertThatThrownBy(() -> MappedMemory.hugePages(3L << 20, HugePageSize.SIZE_2M)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("multiple of 2 MiB");
        assertThatThrownBy(() -> HugePageSize.SIZE_2M.requireAvailable(3L << 20)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("not a whole number of 2M huge pages");
    }

    /** Writes {@code value} into every page of {@code [offset, offset + length)}. */
    private static void touch(MappedMemory memory, long offset, long length, byte value) {
        for (long page = offset; page < offset + length; page += 4096) {
            memory.segment().set(JAVA_BYTE, page, value);
        }
    }

    @Test
    void residentBytesCountTheTouchedPagesOfThisMappingOnly() throws IOException {
        try (MappedMemory memory = MappedMemory.anonymous(16L << 20); MappedMemory other = MappedMemory.anonymous(8L << 20)) {
            assertThat(memory.residentBytes()).isZero();
            touch(other, 0, 8L << 20, (byte) 1);
            touch(memory, 0, 6L << 20, (byte) 1);
            assertThat(memory.residentBytes()).isEqualTo(ProcSelf.residentKib(memory.address()) << 10)
                    .isBetween(6L << 20, 8L << 20); // a huge page may round the last 2 MiB up
            memory.release(0, 16L << 20);
            assertThat(memory.residentBytes()).isZero();
        }
    }

    @Test
    void anSmapsEntryReachingPastTheMappingCountsItsPartInside() {
        List<String> smaps = List.of(
                "7f0000000000-7f0000400000 rw-p 00000000 00:00 0 ",
                "Size:               4096 kB",
                "Rss:                4096 kB",
                "7f0000400000-7f0000800000 rw-p 00000000 00:00 0 ",
                "Rss:                1024 kB",
                "7f0000800000-7f0000c00000 rw-p 00000000 00:00 0          [heap]",
                "Rss:                4096 kB",
                "VmFlags: rd wr mr mw me ac");
        // [0x7f0000200000, 0x7f0000800000): half the first entry (2 MiB of 4) and all the second (1 MiB).
        assertThat(MappedMemory.residentBytes(smaps, 0x7f0000200000L, 6L << 20)).isEqualTo(3L << 20);
        assertThat(MappedMemory.residentBytes(smaps, 0x7f0000c00000L, 1L << 20)).isZero();
    }

    @Test
    void releasedAnonymousPagesLeaveTheResidentSetAndReadAsZeros() throws IOException {
        try (MappedMemory memory = MappedMemory.anonymous(4L << 20)) {
            touch(memory, 0, 4L << 20, (byte) 7);
            long before = ProcSelf.residentKib(memory.address());

            memory.release(1L << 20, 1L << 20);

            assertThat(ProcSelf.residentKib(memory.address())).isEqualTo(before - 1024);
            assertThat(memory.segment().get(JAVA_BYTE, 1L << 20)).isZero();
            assertThat(memory.segment().get(JAVA_BYTE, (2L << 20) - 1)).isZero();
            assertThat(memory.segment().get(JAVA_BYTE, (1L << 20) - 4096)).isEqualTo((byte) 7);
            assertThat(memory.segment().get(JAVA_BYTE, 2L << 20)).isEqualTo((byte) 7);
        }
    }

    @Test
    void releasedPagesOfAMemoryFileMappingDropTheirCopiesAndReadAsTheFileAgain() throws IOException {
        Path file = memoryFile();
        try (MappedMemory memory = MappedMemory.mapFile(file, 0, 3 * 4096, false)) {
            touch(memory, 0, 3 * 4096, (byte) 9); // a private copy of each page
            long before = ProcSelf.residentKib(memory.address());

            memory.release(4096, 4096);

            assertThat(ProcSelf.residentKib(memory.address())).isEqualTo(before - 4);
            assertThat(memory.segment().get(JAVA_BYTE, 4096)).as("the file's byte, not the copy's").isEqualTo((byte) 2);
            assertThat(memory.segment().get(JAVA_BYTE, 0)).isEqualTo((byte) 9);
        }
    }

    @Test
    void releasedPagesOfAMemfdAreRemovedFromItInEveryMapping() throws IOException {
        try (MappedMemory memory = MappedMemory.memfd("release-test", 1L << 20)) {
            touch(memory, 0, 1L << 20, (byte) 5);
            long before = ProcSelf.residentKib(memory.address());

            memory.release(0, 512 * 1024);

            assertThat(ProcSelf.residentKib(memory.address())).isEqualTo(before - 512);
            // Zeros, not the 5 written: the pages left the memfd (MADV_DONTNEED would only unmap them here).
            assertThat(memory.segment().get(JAVA_BYTE, 0)).isZero();
            assertThat(memory.segment().get(JAVA_BYTE, 512 * 1024)).isEqualTo((byte) 5);
        }
    }

    @Test
    void releaseRefusesUnalignedOrOutsideRangesAndHugetlbMemory() throws IOException {
        try (MappedMemory memory = MappedMemory.anonymous(1L << 20)) {
            assertThatThrownBy(() -> memory.release(100, 4096)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("4 KiB-aligned");
            assertThatThrownBy(() -> memory.release(0, 100)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> memory.release(1L << 20, 4096)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> memory.release(4096, Long.MAX_VALUE - 4095)).isInstanceOf(IllegalArgumentException.class);
        }
        try (HugePagePool _ = HugePagePool.reserve(HugePageSize.SIZE_2M, 1);
                MappedMemory memory = MappedMemory.hugePages(2L << 20, HugePageSize.SIZE_2M)) {
            assertThat(memory.hugeTlb()).isTrue();
            assertThatThrownBy(() -> memory.release(0, 4096)).isInstanceOf(IllegalStateException.class).hasMessageContaining("hugetlb");
        }
    }
}
