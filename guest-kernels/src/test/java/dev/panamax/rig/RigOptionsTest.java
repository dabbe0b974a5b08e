package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The rig's vCPU count from {@code PANAMAX_RIG_CPUS}, and which rig serves which options. */
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

    private static Rig.Options at(String cwd) {
        return new Rig.Options(Path.of(cwd), List.of(), 4096, 2, Duration.ofSeconds(180), false, false, Duration.ofMinutes(1), null);
    }

    @Test
    void aRigCoversWhatItSharesWithTheRightsAskedForAndOnlyInItsOwnShape() {
        Rig.Options rig = at("/work/tree").withShare(Path.of("/home/u/.m2"), true).withShare(Path.of("/home/u/.cache/panamax"), false);
        assertThat(rig.covers(at("/work/tree/cli"))).as("a directory inside the working tree").isTrue();
        assertThat(rig.covers(at("/work/tree").withShare(Path.of("/home/u/.m2/repository"), true))).isTrue();
        assertThat(rig.covers(at("/work/tree").withShare(Path.of("/home/u/.m2"), false))).as("read-write where it shares read-only").isFalse();
        assertThat(rig.covers(at("/home/u/.m2"))).as("a working directory must be read-write").isFalse();
        assertThat(rig.covers(at("/elsewhere"))).isFalse();
        assertThat(rig.covers(at("/work/tree").withShare(Path.of("/usr/share/doc"), true))).as("/usr is always there, read-only").isTrue();
        assertThat(rig.covers(at("/work/tree").withShare(Path.of("/work/treetop"), true))).as("a path prefix is not a parent").isFalse();
        Rig.Options other = new Rig.Options(Path.of("/work/tree"), List.of(), 4096, 1, Duration.ofSeconds(180), false, false, Duration.ofMinutes(1), null);
        assertThat(rig.covers(other)).as("another vCPU count").isFalse();
        assertThat(rig.covers(at("/work/tree").withOneTcgThread())).as("one TCG thread").isFalse();
    }

    /** A Panamax run from a directory outside its checkout: the JVMs started in the rig need its class path and JDK. */
    @Test
    void theDefaultsShowThisJvmsClassPathAndJdkWhereverTheWorkingDirectoryIs(@TempDir Path elsewhere) {
        String cwd = System.getProperty("user.dir");
        System.setProperty("user.dir", elsewhere.toString());
        Rig.Options defaults;
        try {
            defaults = Rig.Options.defaults();
        } finally {
            System.setProperty("user.dir", cwd);
        }
        assertThat(defaults.workingDirectory()).isEqualTo(elsewhere.toAbsolutePath());
        for (String entry : System.getProperty("java.class.path").split(java.io.File.pathSeparator)) {
            assertThat(defaults.shows(Path.of(entry), true)).as("class path entry %s", entry).isTrue();
        }
        assertThat(defaults.shows(Path.of(System.getProperty("java.home"), "bin", "java"), true)).as("the JDK").isTrue();
        assertThat(defaults.shows(Path.of("/nowhere/else"), true)).isFalse();
    }

    @Test
    void aRestartedWarmRigSharesWhatTheEarlierOneDidThatStillExists(@TempDir Path tmp) throws Exception {
        Path kept = Files.createDirectory(tmp.resolve("kept"));
        Path earlierCwd = Files.createDirectory(tmp.resolve("earlier"));
        Rig.Options earlier = at(earlierCwd.toString()).withShare(kept, true).withShare(tmp.resolve("gone"), false);
        Rig.Options wanted = at("/work/tree");
        Rig.Options union = RigDaemon.union(wanted, earlier);
        assertThat(union.workingDirectory()).isEqualTo(Path.of("/work/tree"));
        assertThat(union.shares()).containsExactly(new Rig.Share(kept, true), new Rig.Share(earlierCwd, false));
        assertThat(union.covers(wanted)).isTrue();
        assertThat(union.covers(at(earlierCwd.toString()).withShare(kept, true))).isTrue();
        Rig.Options oneCpu = new Rig.Options(Path.of("/work/tree"), List.of(), 4096, 1, Duration.ofSeconds(180), false, false, Duration.ofMinutes(1), null);
        assertThat(RigDaemon.union(oneCpu, earlier)).as("another shape keeps nothing").isEqualTo(oneCpu);
    }
}
