package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** The rig's vCPU count from {@code PANAMAX_RIG_CPUS}. */
class RigOptionsTest {
    @Test
    void twoVcpusUnlessTheVariableGivesOneToEight() {
        assertThat(Rig.Options.cpus(null)).isEqualTo(2);
        assertThat(Rig.Options.cpus("")).isEqualTo(2);
        assertThat(Rig.Options.cpus("1")).isEqualTo(1);
        assertThat(Rig.Options.cpus("8")).isEqualTo(8);
    }

    @Test
    void anythingElseIsRefusedNamingTheVariable() {
        for (String bad : new String[] {"0", "9", "-1", "two", "1.5"}) {
            assertThatThrownBy(() -> Rig.Options.cpus(bad)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("PANAMAX_RIG_CPUS is '" + bad + "'; give the rig's vCPU count, 1 to 8");
        }
    }
}
