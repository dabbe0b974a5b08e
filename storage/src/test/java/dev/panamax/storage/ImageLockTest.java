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

    /** A live migration's hand-over: the lock dropped lets another open take the image, and comes back only once that one let go. */
    @Test
    void anUnlockedImageCanBeTakenByAnotherOpenAndTakenBackAfterIt() throws IOException {
        Path path = image(ImageFormat.QCOW2);
        try (BlockBackend source = Images.open(path, Images.OpenOptions.readWrite().withLock())) {
            source.imageFile().unlock();
            try (BlockBackend destination = Images.open(path, Images.OpenOptions.readWrite().withLock())) {
                assertThat(source.imageFile().relock()).as("taking it back while the other holds it").isFalse();
                assertThat(destination.isReadOnly()).isFalse();
            }
            assertThat(source.imageFile().relock()).isTrue();
            assertThatThrownBy(() -> Images.open(path, Images.OpenOptions.readWrite().withLock()))
                    .hasMessageContaining("is in use by another process (locked)");
        }
    }
}
