package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The start-up cache of the rig's JVMs, trained and used on this host (what the rig does, without a rig). */
class RigJvmCacheTest {
    @TempDir Path root;

    /** The training's program, and the checked JVM's: loads a class of this module's test classes, a directory on the class path. */
    public static final class Trained {
        public static void main(String[] args) {
            System.out.println("trained with " + new Marker());
        }
    }

    static final class Marker {
        @Override
        public String toString() {
            return "a marker";
        }
    }

    @Test
    void jvmsStartWithACacheTrainedOnceForTheClassPathWithItsDirectoriesAsJars() {
        AtomicInteger runs = new AtomicInteger();
        RealKvm host = (argv, timeout, echo, input) -> {
            runs.incrementAndGet();
            return new HostKvm().run(argv, timeout, echo, input);
        };
        Rig.JvmTraining training = new Rig.JvmTraining(Trained.class.getName(), List::of);

        Optional<RigJvmCache> cache = RigJvmCache.prepare(training, List.of(), host, root);

        assertThat(cache).isPresent();
        assertThat(runs).as("one training run").hasValue(1);
        assertThat(System.getProperty("java.class.path")).as("this test's own class path has directories").contains("test-classes");
        for (String entry : cache.orElseThrow().classPath().split(File.pathSeparator)) {
            assertThat(Path.of(entry)).as(entry).isRegularFile();
        }
        List<String> argv = cache.orElseThrow().javaCommand(List.of("-Xlog:class+load=info"), Trained.class.getName(), List.of());
        RunResult r = new HostKvm().run(argv, Duration.ofMinutes(1));
        assertThat(r.exitStatus()).as(r.output()).isZero();
        assertThat(r.output()).contains("trained with a marker")
                .as("the class came from the cache, not from its jar").contains(Marker.class.getName() + " source: shared objects file");
        assertThat(RigJvmCache.prepare(training, List.of(), host, root)).isEqualTo(cache);
        assertThat(runs).as("trained once").hasValue(1);
    }

    @Test
    void aTrainingThatWritesNoCacheLeavesTheJvmsWithoutOneAndNoHalfMadeEntry() throws Exception {
        RealKvm noJava = (argv, timeout, echo, input) -> new RunResult(127, false, Duration.ZERO, "sh: java: not found\n");

        assertThat(RigJvmCache.prepare(new Rig.JvmTraining(Trained.class.getName(), List::of), List.of(), noJava, root)).isEmpty();
        List<Path> left = new ArrayList<>();
        try (var all = Files.walk(root.resolve("rig-jvm"))) {
            all.filter(Files::isDirectory).skip(1).forEach(left::add);
        }
        assertThat(left).isEmpty();
    }
}
