package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import java.util.zip.GZIPInputStream;
import org.apache.commons.compress.archivers.cpio.CpioArchiveEntry;
import org.apache.commons.compress.archivers.cpio.CpioArchiveInputStream;
import org.apache.commons.compress.archivers.cpio.CpioConstants;
import org.junit.jupiter.api.Test;

/** Builds (first run: about 4-5 minutes) or finds the tiny guest and checks what a VMM relies on. */
class GuestImagesTest {

    @Test
    void kernelHasEveryOptionOfTheFragment() throws IOException {
        Path config = GuestImages.defaultKernel().resolveSibling("config");
        KernelBuild.checkConfig(KernelBuild.configFragment(), Files.readString(config)); // throws when one is lost
    }

    @Test
    void kernelHasVsockOverVirtioAndVirtiofs() throws IOException {
        String config = Files.readString(GuestImages.defaultKernel().resolveSibling("config"));
        assertThat(config.lines()).contains("CONFIG_VSOCKETS=y", "CONFIG_VIRTIO_VSOCKETS=y", "CONFIG_VIRTIO_VSOCKETS_COMMON=y",
                "CONFIG_FUSE_FS=y", "CONFIG_VIRTIO_FS=y");
    }

    @Test
    void bzImageFollowsTheLinuxBootProtocol() throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(GuestImages.defaultKernel())).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(b.getShort(0x1fe)).isEqualTo((short) 0xaa55);
        assertThat(b.getInt(0x202)).isEqualTo(0x53726448); // "HdrS"
    }

    @Test
    void vmlinuxIsAnElfWithThePvhEntryNote() throws IOException {
        byte[] elf = Files.readAllBytes(GuestImages.defaultVmlinux());
        assertThat(new String(elf, 1, 3, java.nio.charset.StandardCharsets.US_ASCII)).isEqualTo("ELF");
        // XEN_ELFNOTE_PHYS32_ENTRY (18), name "Xen", an 8-byte address: the note a PVH loader looks for.
        ByteBuffer note = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putInt(4).putInt(8).putInt(18).put("Xen\0".getBytes());
        assertThat(indexOf(elf, note.array())).isPositive();
    }

    @Test
    void initramfsHoldsTheStaticVsockTool() throws IOException {
        assertStaticProgram("bin/vsock");
    }

    @Test
    void initramfsHoldsTheStaticExecAgent() throws IOException {
        assertStaticProgram(ExecAgent.GUEST_PATH.substring(1));
    }

    private static void assertStaticProgram(String name) throws IOException {
        CpioArchiveEntry found = null;
        byte[] content = null;
        try (InputStream in = new GZIPInputStream(Files.newInputStream(GuestImages.defaultInitramfs()));
                CpioArchiveInputStream cpio = new CpioArchiveInputStream(in)) {
            for (CpioArchiveEntry e; (e = cpio.getNextEntry()) != null; ) {
                if (e.getName().equals(name)) {
                    found = e;
                    content = cpio.readAllBytes();
                }
            }
        }
        assertThat(found).as(name + " in the initramfs").isNotNull();
        assertThat(found.getMode()).isEqualTo(CpioConstants.C_ISREG | 0755);
        assertThat(ElfFile.programHeaderTypes(content)).isNotEmpty().doesNotContain(ElfFile.PT_INTERP, ElfFile.PT_DYNAMIC);
    }

    @Test
    void initramfsHoldsInitAndBusyboxWithItsApplets() throws IOException {
        Set<String> names = new HashSet<>();
        try (InputStream in = new GZIPInputStream(Files.newInputStream(GuestImages.defaultInitramfs()));
                CpioArchiveInputStream cpio = new CpioArchiveInputStream(in)) {
            for (CpioArchiveEntry e; (e = cpio.getNextEntry()) != null; ) names.add(e.getName());
        }
        assertThat(names).contains("init", "bin/busybox", "bin/sh", "bin/mount", "bin/poweroff", "bin/reboot", "bin/awk", "dev/console");
    }

    @Test
    void commandLineQuotesTheCommandAndRefusesWhatTheKernelCannotQuote() {
        assertThat(GuestImages.commandLine("echo a b", "reboot")).endsWith(" panamax.exit=reboot panamax.run=\"echo a b\"");
        assertThatThrownBy(() -> GuestImages.commandLine("echo \"x\"", "reboot")).hasMessageContaining("double quote");
        assertThatThrownBy(() -> GuestImages.commandLine("true", "halt")).hasMessageContaining("reboot or poweroff");
    }

    @Test
    void exitStatusIsReadFromTheConsole() {
        assertThat(GuestImages.exitStatus("boot\r\npanamax: init reached\r\npanamax: exit status 7\r\nreboot\r\n")).hasValue(7);
        assertThat(GuestImages.exitStatus("panamax: init reached\n")).isEmpty();
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }
}
