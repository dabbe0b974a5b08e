package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The start-up cache of the rig's JVMs, trained and used on this host (what the rig does, without a
 * rig), for a class path of a jar (the training's main class and a class it loads) and a directory
 * after it (a class only there).
 */
class RigJvmCacheTest {
    @TempDir Path root;
    @TempDir Path classes;

    /** The training's program, and the checked JVM's: loads {@link InTheJar}, and {@link InTheDirectory} when asked. */
    public static final class Trained {
        public static void main(String[] args) {
            System.out.println("trained with " + new InTheJar() + (args.length > 0 ? " and " + new InTheDirectory() : ""));
        }
    }

    static final class InTheJar {
        @Override
        public String toString() {
            return "a class of the jar";
        }
    }

    static final class InTheDirectory {
        @Override
        public String toString() {
            return "a class of the directory";
        }
    }

    /** A jar of {@link Trained} and {@link InTheJar}, then a directory of {@link InTheDirectory}: the test's own classes. */
    private String classPath() throws IOException {
        Path jar = classes.resolve("trained.jar");
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar))) {
            for (Class<?> c : List.of(Trained.class, InTheJar.class)) {
                copyClass(c, out);
            }
        }
        Path dir = classes.resolve("dir");
        String name = InTheDirectory.class.getName().replace('.', '/') + ".class";
        Files.createDirectories(dir.resolve(name).getParent());
        try (var in = RigJvmCacheTest.class.getClassLoader().getResourceAsStream(name)) {
            Files.copy(in, dir.resolve(name));
        }
        // The directory first, as Maven puts target/test-classes: the cache's JVMs get it after the jars.
        return dir + File.pathSeparator + jar;
    }

    private static void copyClass(Class<?> c, JarOutputStream out) throws IOException {
        String name = c.getName().replace('.', '/') + ".class";
        out.putNextEntry(new JarEntry(name));
        try (var in = RigJvmCacheTest.class.getClassLoader().getResourceAsStream(name)) {
            in.transferTo(out);
        }
        out.closeEntry();
    }

    @Test
    void jvmsStartWithACacheTrainedOnceOnTheJarsWithTheDirectoriesAfterThem() throws Exception {
        AtomicInteger runs = new AtomicInteger();
        List<String> trainedWith = new ArrayList<>();
        RealKvm host = (argv, timeout, echo, input) -> {
            runs.incrementAndGet();
            trainedWith.add(argv.get(argv.indexOf("-cp") + 1));
            return new HostKvm().run(argv, timeout, echo, input);
        };
        Rig.JvmTraining training = new Rig.JvmTraining(Trained.class.getName(), List::of);
        String classPath = classPath();

        Optional<RigJvmCache> cache = RigJvmCache.prepare(training, List.of(), host, root, classPath);

        assertThat(cache).isPresent();
        assertThat(runs).as("one training run").hasValue(1);
        assertThat(trainedWith.getFirst()).as("trained on the jar alone").isEqualTo(classes.resolve("trained.jar").toString());
        assertThat(cache.orElseThrow().classPath())
                .isEqualTo(classes.resolve("trained.jar") + File.pathSeparator + classes.resolve("dir"));
        List<String> argv = cache.orElseThrow().javaCommand(List.of("-Xlog:class+load=info"), Trained.class.getName(), List.of("x"));
        RunResult r = new HostKvm().run(argv, Duration.ofMinutes(1));
        assertThat(r.exitStatus()).as(r.output()).isZero();
        assertThat(r.output()).contains("trained with a class of the jar and a class of the directory")
                .as("the jar's class came from the cache").contains(InTheJar.class.getName() + " source: shared objects file")
                .as("the directory's from the directory").contains(InTheDirectory.class.getName() + " source: file:");
        assertThat(RigJvmCache.prepare(training, List.of(), host, root, classPath)).isEqualTo(cache);
        assertThat(runs).as("trained once").hasValue(1);
    }

    @Test
    void aTrainingThatWritesNoCacheLeavesTheJvmsWithoutOneAndNoHalfMadeEntry() throws Exception {
        RealKvm noJava = (argv, timeout, echo, input) -> new RunResult(127, false, Duration.ZERO, "sh: java: not found\n");

        assertThat(RigJvmCache.prepare(new Rig.JvmTraining(Trained.class.getName(), List::of), List.of(), noJava, root, classPath()))
                .isEmpty();
        List<Path> left = new ArrayList<>();
        try (var all = Files.walk(root.resolve("rig-jvm"))) {
            all.filter(Files::isDirectory).skip(1).forEach(left::add);
        }
        assertThat(left).isEmpty();
    }
}
