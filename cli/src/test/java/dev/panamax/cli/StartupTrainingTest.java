package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.rig.UsesKvm;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The commands the launcher's start-up cache is trained on; the training VM needs /dev/kvm (an emulating one will do). */
@UsesKvm
class StartupTrainingTest {
    @TempDir Path dir;

    @Test
    void everyTrainingCommandSucceedsButTheRunWithoutAKernel() throws Exception {
        List<Integer> expected = new ArrayList<>(Collections.nCopies(StartupTraining.COMMANDS.size() - 1, 0));
        expected.add(Panamax.EXIT_USAGE);
        assertThat(StartupTraining.COMMANDS.getLast()).startsWith("run");
        assertThat(StartupTraining.run(dir)).isEqualTo(expected);
    }
}
