package dev.panamax.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KernelImageTest {
    @TempDir Path dir;

    private KernelImage open(byte[] bytes) throws Exception {
        return KernelImage.open(SyntheticKernels.write(dir, "kernel", bytes));
    }

    @Test
    void bzImageHeaderIsRead() throws Exception {
        KernelImage k = open(SyntheticKernels.bzImage());
        assertThat(k.format()).isEqualTo(KernelImage.Format.BZIMAGE);
        assertThat(k.entry64()).isEqualTo(0x100200);
        assertThat(k.commandLineLimit()).isEqualTo(2047);
        assertThat(k.loadEnd()).isEqualTo(0x200000); // init_size from 1 MiB
        assertThat(k.pvhEntry()).isEmpty();
    }

    @Test
    void vmlinuxPvhNoteIsFound() throws Exception {
        assertThat(open(SyntheticKernels.vmlinux(true)).pvhEntry()).hasValue(0x100000);
        assertThat(open(SyntheticKernels.vmlinux(false)).pvhEntry()).isEmpty();
    }

    @Test
    void oldOrUnsuitableBzImagesAreRefused() {
        assertThatThrownBy(() -> open(SyntheticKernels.bzImage(0x0206, 1, 1))).hasMessageContaining("boot protocol 2.06");
        assertThatThrownBy(() -> open(SyntheticKernels.bzImage(0x020f, 0, 1))).hasMessageContaining("zImage");
        assertThatThrownBy(() -> open(SyntheticKernels.bzImage(0x020f, 1, 0))).hasMessageContaining("64-bit entry");
        assertThatThrownBy(() -> open(Arrays.copyOf(SyntheticKernels.bzImage(), 1024))).hasMessageContaining("truncated");
    }

    @Test
    void hostileElfHeadersAreRefused() {
        byte[] tooManyHeaders = SyntheticKernels.vmlinux(true);
        ByteBuffer.wrap(tooManyHeaders).order(ByteOrder.LITTLE_ENDIAN).putShort(56, (short) 60000);
        assertThatThrownBy(() -> open(tooManyHeaders)).isInstanceOf(BootException.class).hasMessageContaining("program header");

        byte[] segmentPastEnd = SyntheticKernels.vmlinux(true);
        ByteBuffer.wrap(segmentPastEnd).order(ByteOrder.LITTLE_ENDIAN).putLong(96, 1L << 40);
        assertThatThrownBy(() -> open(segmentPastEnd)).isInstanceOf(BootException.class).hasMessageContaining("outside the file");

        byte[] emptySegment = SyntheticKernels.vmlinux(true);
        ByteBuffer.wrap(emptySegment).order(ByteOrder.LITTLE_ENDIAN).putLong(96, 0).putLong(104, 0); // filesz, memsz
        assertThatThrownBy(() -> open(emptySegment)).isInstanceOf(BootException.class).hasMessageContaining("no loadable ELF segments");

        byte[] lowAddress = SyntheticKernels.vmlinux(true);
        ByteBuffer.wrap(lowAddress).order(ByteOrder.LITTLE_ENDIAN).putLong(88, 0x7000); // over the zero page
        assertThatThrownBy(() -> open(lowAddress)).isInstanceOf(BootException.class).hasMessageContaining("physical address");

        byte[] noteLoop = SyntheticKernels.vmlinux(true);
        ByteBuffer.wrap(noteLoop).order(ByteOrder.LITTLE_ENDIAN).putInt(0x200, -1); // absurd namesz
        assertThat(catchPvh(noteLoop)).isFalse();

        byte[] arm = SyntheticKernels.vmlinux(true);
        ByteBuffer.wrap(arm).order(ByteOrder.LITTLE_ENDIAN).putShort(18, (short) 183);
        assertThatThrownBy(() -> open(arm)).hasMessageContaining("not x86-64");
    }

    private boolean catchPvh(byte[] bytes) {
        try {
            return open(bytes).pvhEntry().isPresent();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }
}
