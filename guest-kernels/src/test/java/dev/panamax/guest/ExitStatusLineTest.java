package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** Reading /init's {@code panamax: exit status N} line, and telling the built-in initramfs by its path. */
class ExitStatusLineTest {
    @Test
    void onlyTheWholeLineWithAStatusOfAByteCounts() {
        assertThat(GuestImages.exitStatusLine("panamax: exit status 0")).hasValue(0);
        assertThat(GuestImages.exitStatusLine("panamax: exit status 42")).hasValue(42);
        assertThat(GuestImages.exitStatusLine("panamax: exit status 255\r")).hasValue(255);
        assertThat(GuestImages.exitStatusLine("panamax: exit status 256")).isEmpty();
        assertThat(GuestImages.exitStatusLine("panamax: exit status 00000000000000000001")).isEmpty();
        assertThat(GuestImages.exitStatusLine("panamax: exit status ")).isEmpty();
        assertThat(GuestImages.exitStatusLine("panamax: exit status -1")).isEmpty();
        assertThat(GuestImages.exitStatusLine("echo panamax: exit status 3")).isEmpty();
        assertThat(GuestImages.exitStatusLine("panamax: exit status 3 and more")).isEmpty();
    }

    @Test
    void theBuiltInInitramfsIsTheCachesOne() {
        Path cached = PanamaxCache.dir("initramfs", "1.35-abc").resolve(GuestInitramfs.FILE_NAME);
        assertThat(GuestImages.isBuiltInInitramfs(cached)).isTrue();
        assertThat(GuestImages.isBuiltInInitramfs(cached.resolveSibling("other.cpio.gz"))).isFalse();
        assertThat(GuestImages.isBuiltInInitramfs(Path.of("/tmp/initramfs.cpio.gz"))).isFalse();
        assertThat(GuestImages.isBuiltInInitramfs(PanamaxCache.root().resolve("initramfs").resolve(GuestInitramfs.FILE_NAME))).isFalse();
        assertThat(GuestImages.isBuiltInInitramfs(null)).isFalse();
    }

    @Test
    void theBuiltInKernelIsTheCachesVmlinuxOrBzImage() {
        Path build = PanamaxCache.root().resolve("kernels").resolve("6.1.192-3-abc");
        assertThat(GuestImages.isBuiltInKernel(build.resolve("vmlinux"))).isTrue();
        assertThat(GuestImages.isBuiltInKernel(build.resolve("bzImage"))).isTrue();
        assertThat(GuestImages.isBuiltInKernel(build.resolve("config"))).isFalse();
        assertThat(GuestImages.isBuiltInKernel(Path.of("/boot/vmlinuz-6.1.0"))).isFalse();
        assertThat(GuestImages.isBuiltInKernel(Path.of("/tmp/6.1/vmlinux"))).isFalse();
        assertThat(GuestImages.isBuiltInKernel(PanamaxCache.root().resolve("kernels").resolve("vmlinux"))).isFalse();
        assertThat(GuestImages.isBuiltInKernel(null)).isFalse();
    }
}
