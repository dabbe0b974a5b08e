package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KernelBuildTest {
    @Test
    void configCheckNamesTheOptionsThatOlddefconfigDropped() {
        String fragment = "# comment\nCONFIG_A=y\nCONFIG_B=y\n";
        assertThatCode(() -> KernelBuild.checkConfig(fragment, "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\n")).doesNotThrowAnyException();
        assertThatThrownBy(() -> KernelBuild.checkConfig(fragment, "CONFIG_A=y\n# CONFIG_B is not set\n"))
                .hasMessageContaining("CONFIG_B=y").hasMessageNotContaining("CONFIG_A");
    }

    @Test
    void optionsTheFragmentTurnsOffMustStayOff() {
        String fragment = "# CONFIG_X is not set\n";
        assertThatCode(() -> KernelBuild.checkConfig(fragment, "# CONFIG_X is not set\n")).doesNotThrowAnyException();
        assertThatCode(() -> KernelBuild.checkConfig(fragment, "CONFIG_Y=y\n")).doesNotThrowAnyException();
        assertThatThrownBy(() -> KernelBuild.checkConfig(fragment, "CONFIG_X=y\n")).hasMessageContaining("# CONFIG_X is not set");
    }

    @Test
    void aBuildOfTheSameConfigIsReusedWhateverItsSourceVersionTheNewestFirst(@TempDir Path kernels) throws Exception {
        assertThat(KernelBuild.newestBuild(kernels.resolve("none"), "abc")).isEmpty();
        Path older = build(kernels, "6.1.176-1-abc", 1000);
        assertThat(KernelBuild.newestBuild(kernels, "abc")).contains(older);
        Path newer = build(kernels, "6.1.192-3-abc", 2000);
        build(kernels, "6.1.200-1-def", 3000); // another config
        build(kernels, ".tmp-6.1.201-1-abc-77", 4000); // a build still under way
        Files.createDirectories(kernels.resolve("6.1.202-1-abc")); // not a finished build: no images
        assertThat(KernelBuild.newestBuild(kernels, "abc")).contains(newer);
        assertThat(KernelBuild.newestBuild(kernels, "fed")).isEmpty();
    }

    private static Path build(Path kernels, String name, long modifiedMillis) throws Exception {
        Path dir = Files.createDirectories(kernels.resolve(name));
        Files.writeString(dir.resolve("bzImage"), "b");
        Files.writeString(dir.resolve("vmlinux"), "v");
        Files.setLastModifiedTime(dir, FileTime.fromMillis(modifiedMillis));
        return dir;
    }

    @Test
    void theCacheKeyIgnoresComments() {
        assertThat(KernelBuild.options("# why\nCONFIG_A=y\n\n# CONFIG_B is not set\n# CONFIG_C=y is a comment\n"))
                .containsExactly("CONFIG_A=y", "# CONFIG_B is not set");
    }
}
