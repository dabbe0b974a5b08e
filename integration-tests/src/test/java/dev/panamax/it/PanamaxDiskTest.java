package dev.panamax.it;

import static dev.panamax.it.PanamaxBootTest.panamaxRun;
import static dev.panamax.it.PanamaxBootTest.tinyGuest;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RunResult;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The tiny guest uses virtio-blk disks: it writes through the block device, syncs and ends, and the
 * host finds the bytes in the image file. The images live in the module's target directory, which
 * the rig shares writable (it is inside the git work tree).
 */
@PanamaxTest
@Timeout(900)
class PanamaxDiskTest {
    private static final String PATTERN = "panamax-pattern-7f3a";
    private Path dir;

    @BeforeEach
    void makeDirectory() throws IOException {
        dir = Files.createDirectories(Path.of("target", "disk-test-" + UUID.randomUUID()).toAbsolutePath());
    }

    @Test
    void theGuestsWritesReachTheImageAndAReadOnlyDiskRefusesThem(RealKvm kvm) throws IOException {
        Path data = dir.resolve("data.raw");
        Files.write(data, new byte[8 << 20]);
        Path readOnly = dir.resolve("ro.raw");
        byte[] readOnlyContents = Arrays.copyOf("read-only disk".getBytes(StandardCharsets.US_ASCII), 1 << 20);
        Files.write(readOnly, readOnlyContents);

        RunResult r = panamaxRun(kvm,
                "echo pci=$(cat /sys/bus/pci/devices/*/vendor /sys/bus/pci/devices/*/device) msix=$(grep -c PCI-MSI /proc/interrupts);"
                        + " echo serial=$(cat /sys/block/vda/serial) ro=$(cat /sys/block/vdb/ro);"
                        + " printf " + PATTERN + " | dd of=/dev/vda bs=4096 seek=3 conv=sync 2>/dev/null; sync;"
                        + " echo 3 > /proc/sys/vm/drop_caches;"
                        + " echo readback=$(dd if=/dev/vda bs=4096 skip=3 count=1 2>/dev/null | head -c " + PATTERN.length() + ");"
                        + " if echo x | dd of=/dev/vdb 2>/dev/null; then echo ro-write=accepted; else echo ro-write=refused; fi;"
                        + " echo ro-contents=$(head -c 14 /dev/vdb)",
                tinyGuest(GuestImages.defaultVmlinux(), "--cpus", "2", "--disk", data + ",id=data_disk", "--disk", readOnly + ",readonly"));

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).as("the host bridge, two virtio-blk functions and pvpanic (every VM's last); per disk, a configuration"
                + " and two request-queue vectors").contains("pci=0x8086 0x1af4 0x1af4 0x1b36 0x0d57 0x1042 0x1042 0x0011 msix=6");
        assertThat(r.output()).contains("serial=data_disk ro=1", "readback=" + PATTERN, "ro-write=refused", "ro-contents=read-only disk");
        assertThat(r.exitStatus()).as(r.output()).isZero();
        byte[] image = Files.readAllBytes(data);
        assertThat(new String(image, 3 * 4096, PATTERN.length(), StandardCharsets.US_ASCII)).isEqualTo(PATTERN);
        assertThat(Arrays.copyOfRange(image, 3 * 4096 + PATTERN.length(), 4 * 4096)).as("conv=sync padded the block with zeros")
                .containsOnly(0);
        assertThat(Files.readAllBytes(readOnly)).isEqualTo(readOnlyContents);
    }

    @Test
    void aQcow2DiskOnVirtioMmioKeepsWhatTheGuestSyncedBeforeItsEnd(RealKvm kvm) throws IOException {
        Path qcow2 = dir.resolve("data.qcow2");
        Images.create(qcow2, CreateOptions.of(ImageFormat.QCOW2, 16 << 20));

        RunResult r = panamaxRun(kvm,
                "cat /proc/cmdline; echo device=$(readlink -f /sys/block/vda);"
                        + " printf " + PATTERN + " | dd of=/dev/vda bs=4096 seek=100 conv=sync 2>/dev/null; sync",
                tinyGuest(GuestImages.defaultVmlinux(), "--disk", qcow2 + ",transport=mmio"));

        assertThat(r.timedOut()).as(r.output()).isFalse();
        assertThat(r.output()).contains("virtio_mmio.device=4K@0xd0000000:5").contains("device=/sys/devices/virtio-mmio-cmdline/virtio-mmio.0/");
        assertThat(r.exitStatus()).as(r.output()).isZero();
        try (BlockBackend disk = Images.open(qcow2, Images.OpenOptions.readOnly())) {
            ByteBuffer block = ByteBuffer.allocate(PATTERN.length());
            disk.read(100 * 4096L, block);
            assertThat(new String(block.array(), StandardCharsets.US_ASCII)).isEqualTo(PATTERN);
        }
    }
}
