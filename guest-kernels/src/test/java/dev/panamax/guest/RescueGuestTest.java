package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;
import org.apache.commons.compress.archivers.cpio.CpioArchiveEntry;
import org.apache.commons.compress.archivers.cpio.CpioArchiveInputStream;
import org.junit.jupiter.api.Test;

class RescueGuestTest {
    private static final Path MODULE = Path.of("test.ko");

    /** An ELF64 file with a section-name table and one {@code .modinfo} section holding {@code modinfo}. */
    private static byte[] module(String modinfo) {
        byte[] names = "\0.shstrtab\0.modinfo\0".getBytes(StandardCharsets.US_ASCII);
        byte[] info = modinfo.getBytes(StandardCharsets.UTF_8);
        int namesAt = 64;
        int infoAt = namesAt + names.length;
        int table = (infoAt + info.length + 7) & ~7;
        ByteBuffer elf = ByteBuffer.allocate(table + 3 * 64).order(ByteOrder.LITTLE_ENDIAN);
        elf.putInt(0, 0x464c457f).put(4, (byte) 2).putLong(0x28, table).putShort(0x3a, (short) 64).putShort(0x3c, (short) 3).putShort(0x3e, (short) 1);
        elf.put(namesAt, names).put(infoAt, info);
        elf.putInt(table + 64, 1).putLong(table + 64 + 0x18, namesAt).putLong(table + 64 + 0x20, names.length);
        elf.putInt(table + 128, 11).putLong(table + 128 + 0x18, infoAt).putLong(table + 128 + 0x20, info.length);
        return elf.array();
    }

    @Test
    void aModulesDependenciesComeFromItsModinfo() throws IOException {
        byte[] ext4 = module("license=GPL\0depends=mbcache,jbd2,crc16\0softdep=pre: crc32c\0name=ext4\0");
        assertThat(RescueGuest.dependencies(ext4, MODULE)).containsExactly("mbcache", "jbd2", "crc16");
        assertThat(RescueGuest.dependencies(module("depends=\0name=fat\0"), MODULE)).isEmpty();
        assertThat(RescueGuest.dependencies(module("name=nothing\0"), MODULE)).isEmpty();
    }

    @Test
    void aMalformedModuleIsAnErrorNamingIt() {
        byte[] whole = module("depends=jbd2\0");
        assertThatThrownBy(() -> RescueGuest.dependencies(Arrays.copyOf(whole, whole.length - 10), MODULE))
                .isInstanceOf(IOException.class).hasMessageContaining("test.ko");
        assertThatThrownBy(() -> RescueGuest.dependencies("not an ELF file at all, not even close".getBytes(StandardCharsets.US_ASCII), MODULE))
                .isInstanceOf(IOException.class).hasMessageContaining("test.ko is not an ELF64 module");
        byte[] badOffset = module("depends=jbd2\0");
        ByteBuffer.wrap(badOffset).order(ByteOrder.LITTLE_ENDIAN).putLong(badOffset.length - 64 + 0x18, 1L << 40);
        assertThatThrownBy(() -> RescueGuest.dependencies(badOffset, MODULE)).isInstanceOf(IOException.class)
                .hasMessageContaining(".modinfo is not inside the file");
    }

    /** Downloads Debian's kernel package on first use (about 100 MB), as {@code image extract} does. */
    @Test
    void theInitramfsIsTheTinyGuestsWithTheModulesAndWhatTheyNeed() throws IOException {
        RescueGuest.Images images = RescueGuest.ensure();
        byte[] tiny = Files.readAllBytes(GuestImages.defaultInitramfs());
        byte[] rescue = Files.readAllBytes(images.initramfs());
        assertThat(Arrays.copyOf(rescue, tiny.length)).as("the tiny guest's archive first").isEqualTo(tiny);
        Map<String, byte[]> entries = new LinkedHashMap<>();
        try (InputStream in = new GZIPInputStream(new ByteArrayInputStream(rescue, tiny.length, rescue.length - tiny.length));
                CpioArchiveInputStream cpio = new CpioArchiveInputStream(in)) {
            for (CpioArchiveEntry e; (e = cpio.getNextEntry()) != null; ) entries.put(e.getName(), cpio.readAllBytes());
        }
        List<String> modules = new ArrayList<>();
        for (String name : entries.keySet()) {
            if (name.endsWith(".ko")) modules.add(name.substring(name.lastIndexOf('/') + 1));
        }
        assertThat(modules).contains("ext4.ko", "jbd2.ko", "mbcache.ko", "xfs.ko", "btrfs.ko", "vfat.ko", "fat.ko", "exfat.ko",
                "ntfs3.ko", "virtio_blk.ko", "vmw_vsock_virtio_transport.ko", "vsock.ko", "crc32c_generic.ko");
        assertThat(modules.indexOf("jbd2.ko")).as("a dependency comes before its user").isLessThan(modules.indexOf("ext4.ko"));
        for (Map.Entry<String, byte[]> e : entries.entrySet()) {
            if (e.getKey().endsWith(".ko")) assertThat(Arrays.copyOf(e.getValue(), 4)).as(e.getKey() + " decompressed").containsExactly(0x7f, 'E', 'L', 'F');
        }
        assertThat(new String(entries.get("etc/modules"), StandardCharsets.US_ASCII)).isEqualTo("vmw_vsock_virtio_transport\nvirtio_blk\n");
        assertThat(new String(entries.get("sbin/modprobe"), StandardCharsets.US_ASCII)).isEqualTo("/bin/busybox");
        assertThat(Files.size(images.kernel())).isGreaterThan(1 << 20);
    }
}
