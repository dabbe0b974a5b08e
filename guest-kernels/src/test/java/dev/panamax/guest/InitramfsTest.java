package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.GZIPInputStream;
import org.apache.commons.compress.archivers.cpio.CpioArchiveEntry;
import org.apache.commons.compress.archivers.cpio.CpioArchiveInputStream;
import org.apache.commons.compress.archivers.cpio.CpioConstants;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class InitramfsTest {
    @TempDir Path tmp;

    @Test
    void writesNewcEntriesTheKernelUnderstands() throws IOException {
        Path file = tmp.resolve("x.cpio.gz");
        try (Initramfs cpio = Initramfs.create(file)) {
            cpio.directory("/bin").file("bin/hello", 0755, "#!/bin/sh\necho hi\n".getBytes(StandardCharsets.UTF_8))
                    .symlink("bin/sh", "busybox").charDevice("dev/console", 5, 1);
        }
        Map<String, CpioArchiveEntry> entries = new LinkedHashMap<>();
        Map<String, String> contents = new LinkedHashMap<>();
        try (InputStream in = new GZIPInputStream(Files.newInputStream(file));
                CpioArchiveInputStream cpio = new CpioArchiveInputStream(in)) {
            for (CpioArchiveEntry e; (e = cpio.getNextEntry()) != null; ) {
                entries.put(e.getName(), e);
                contents.put(e.getName(), new String(cpio.readAllBytes(), StandardCharsets.UTF_8));
            }
        }
        assertThat(entries).containsOnlyKeys("bin", "bin/hello", "bin/sh", "dev/console");
        assertThat(entries.get("bin").getFormat()).isEqualTo(CpioConstants.FORMAT_NEW);
        assertThat(entries.get("bin").isDirectory()).isTrue();
        assertThat(entries.get("bin/hello").getMode()).isEqualTo(CpioConstants.C_ISREG | 0755);
        assertThat(contents.get("bin/hello")).isEqualTo("#!/bin/sh\necho hi\n");
        assertThat(entries.get("bin/sh").isSymbolicLink()).isTrue();
        assertThat(contents.get("bin/sh")).isEqualTo("busybox");
        assertThat(entries.get("dev/console").isCharacterDevice()).isTrue();
        assertThat(entries.get("dev/console").getRemoteDeviceMaj()).isEqualTo(5);
        assertThat(entries.get("dev/console").getRemoteDeviceMin()).isEqualTo(1);
        assertThat(entries.values().stream().map(CpioArchiveEntry::getInode).distinct()).hasSize(4);
    }
}
