package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

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
    void theCacheKeyIgnoresComments() {
        assertThat(KernelBuild.options("# why\nCONFIG_A=y\n\n# CONFIG_B is not set\n# CONFIG_C=y is a comment\n"))
                .containsExactly("CONFIG_A=y", "# CONFIG_B is not set");
    }
}
