package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
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
}
