package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PanamaxCacheTest {
    @TempDir Path tmp;

    @Test
    void fillsAnEntryOnceAndReusesIt() {
        AtomicInteger fills = new AtomicInteger();
        Path entry = tmp.resolve("kind/key");
        for (int i = 0; i < 2; i++) {
            assertThat(PanamaxCache.entry(entry, dir -> {
                fills.incrementAndGet();
                Files.writeString(dir.resolve("f"), "x");
            })).isEqualTo(entry);
        }
        assertThat(fills).hasValue(1);
        assertThat(entry.resolve("f")).hasContent("x");
    }

    @Test
    void aFailedFillLeavesNoEntryAndNoTemporaryDirectory() throws IOException {
        Path entry = tmp.resolve("kind/key");
        assertThatThrownBy(() -> PanamaxCache.entry(entry, dir -> {
            Files.writeString(dir.resolve("half"), "x");
            throw new IOException("disk full");
        })).hasMessageContaining("disk full");
        assertThat(entry).doesNotExist();
        try (var left = Files.list(entry.getParent())) {
            assertThat(left.map(p -> p.getFileName().toString())).containsExactly("key.lock");
        }
    }

    @Test
    void leftoversOfAKilledBuildAreRemoved() throws IOException {
        Path entry = tmp.resolve("kind/key");
        Path stale = Files.createDirectories(tmp.resolve("kind/.tmp-key-999999/tree"));
        PanamaxCache.entry(entry, dir -> {});
        assertThat(stale.getParent()).doesNotExist();
    }

    @Test
    void keysBecomeSafeDirectoryNames() {
        assertThat(PanamaxCache.dir("debs", "busybox_1:1.35/x").getFileName().toString()).isEqualTo("busybox_1+1.35_x");
    }
}
