package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ImageLockTest {
    @TempDir
    Path dir;

    private Path image(ImageFormat format) throws IOException {
        Path path = dir.resolve("disk." + format.name().toLowerCase());
        Images.create(path, CreateOptions.of(format, 1 << 20));
        return path;
    }

    @Test
    void aLockedWritableImageCannotBeOpenedLockedAgain() throws IOException {
        Path path = image(ImageFormat.QCOW2);
        try (BlockBackend first = Images.open(path, Images.OpenOptions.readWrite().withLock())) {
            assertThatThrownBy(() -> Images.open(path, Images.OpenOptions.readWrite().withLock()))
                    .isInstanceOf(IOException.class)
                    .hasMessage("disk image " + path + " is in use by another process (locked); stop the VM using it,"
                            + " or give this one a copy (or attach it read-only to every VM)");
            assertThatThrownBy(() -> Images.open(path, Images.OpenOptions.readOnly().withLock()))
                    .hasMessageContaining("is in use by another process (locked)");
            // Opening and closing the file elsewhere (as a failed attempt does) keeps the lock.
            Images.open(path, Images.OpenOptions.readOnly()).close();
            assertThatThrownBy(() -> Images.open(path, Images.OpenOptions.readWrite().withLock()))
                    .hasMessageContaining("is in use by another process (locked)");
            assertThat(first.size()).isEqualTo(1 << 20);
        }
        Images.open(path, Images.OpenOptions.readWrite().withLock()).close(); // closing released it
    }

    @Test
    void readOnlyOpensShareTheLockButExcludeAWriter() throws IOException {
        Path path = image(ImageFormat.RAW);
        try (BlockBackend a = Images.open(path, Images.OpenOptions.readOnly().withLock());
                BlockBackend b = Images.open(path, Images.OpenOptions.readOnly().withLock())) {
            assertThatThrownBy(() -> Images.open(path, Images.OpenOptions.readWrite().withLock()))
                    .hasMessageContaining("disk image " + path + " is in use by another process (locked)");
            assertThat(a.isReadOnly() && b.isReadOnly()).isTrue();
        }
    }
}
