package dev.panamax.rig;

import dev.panamax.guest.PanamaxCache;
import dev.panamax.guest.Progress;
import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * An ahead-of-time cache (JDK 25: classes loaded and linked, lambda forms, method profiles; JEP 483,
 * 515) for the JVMs a program starts in the rig. On QEMU's software CPU a Panamax JVM loads and links
 * some 3,000 classes, at about 150 a second, before its guest runs: a restore took 18-19 s to its
 * guest's first line, 12-15 s with a cache trained on a boot, in the rig. One cache per set of jars on
 * the class path, trained once in the rig on the options' {@link Rig.JvmTraining} and kept in the
 * Panamax cache, where later runs with the same jars find it.
 *
 * <p>The JDK caches classes from jars only, and refuses to train with a directory on the class path
 * that holds any. So the training runs with the class path's jars alone, and the JVMs with those jars
 * followed by its directories (a module's {@code target/test-classes}): a JVM may find classes after
 * the class path it was trained with, from where they are. Editing a test so does not make a new cache.
 * A JVM finds a cache stale by the jars' sizes and times and starts without it, as it does here when
 * training fails: a cache only saves time.
 */
final class RigJvmCache {
    private static final String CACHE_FILE = "jvm.aot";
    /** Caches of other jars kept (about 22 MB each): the class paths of a few modules or builds. */
    private static final int CACHES_KEPT = 4;
    private static final Duration TRAINING_LIMIT = Duration.ofMinutes(5);
    /** By training and class path: each is prepared, or found unpreparable, once per JVM. */
    private static final Map<String, Optional<RigJvmCache>> PREPARED = new HashMap<>();

    private final String classPath;
    private final Path cache;

    private RigJvmCache(String classPath, Path cache) {
        this.classPath = classPath;
        this.cache = cache;
    }

    /**
     * The cache for the running class path and {@code training}, trained first by running the training
     * through {@code where} (the rig) if there is none for its jars; empty if it could not be made.
     */
    static Optional<RigJvmCache> prepare(Rig.JvmTraining training, List<String> jvmOptions, RealKvm where) {
        return prepare(training, jvmOptions, where, PanamaxCache.root(), System.getProperty("java.class.path"));
    }

    /** {@link #prepare} with the caches under {@code root}, for a JVM of class path {@code classPath}. */
    static synchronized Optional<RigJvmCache> prepare(Rig.JvmTraining training, List<String> jvmOptions, RealKvm where, Path root,
            String classPath) {
        return PREPARED.computeIfAbsent(root + "\n" + training.mainClass() + "\n" + jvmOptions + "\n" + classPath, k -> {
            try {
                return Optional.of(prepare(training, jvmOptions, classPath, where, root));
            } catch (RuntimeException | IOException e) {
                Progress.say("JVMs in the rig start without a start-up cache: " + e.getMessage());
                return Optional.empty();
            }
        });
    }

    private static RigJvmCache prepare(Rig.JvmTraining training, List<String> jvmOptions, String runningClassPath, RealKvm where,
            Path root) throws IOException {
        List<String> jars = new ArrayList<>();
        List<String> directories = new ArrayList<>();
        StringBuilder key = new StringBuilder(Runtime.version().toString()).append(System.getProperty("java.home"))
                .append(jvmOptions).append(training.mainClass());
        for (String entry : runningClassPath.split(File.pathSeparator)) {
            Path p = Path.of(entry).toAbsolutePath().normalize();
            if (Files.isDirectory(p)) {
                directories.add(p.toString());
            } else if (Files.isRegularFile(p)) {
                jars.add(p.toString());
                key.append(p).append(Files.size(p)).append(Files.getLastModifiedTime(p));
            } // a missing entry holds no classes
        }
        String trainedClassPath = String.join(File.pathSeparator, jars);
        Path dir = root.resolve("rig-jvm").resolve(PanamaxCache.hash(key.toString(), 20));
        if (!Files.isDirectory(dir)) {
            PanamaxCache.entry(dir, tmp -> train(training, jvmOptions, trainedClassPath, tmp.resolve(CACHE_FILE), where));
            prune(dir.getParent(), CACHES_KEPT);
        }
        List<String> all = new ArrayList<>(jars);
        all.addAll(directories);
        return new RigJvmCache(String.join(File.pathSeparator, all), dir.resolve(CACHE_FILE));
    }

    /** Runs the training in the rig with the JVM writing its cache to {@code cache} when it ends. */
    private static void train(Rig.JvmTraining training, List<String> jvmOptions, String classPath, Path cache, RealKvm where)
            throws IOException {
        Progress.say("training a start-up cache for the JVMs in the rig (once for these jars; about a minute)");
        long start = System.nanoTime();
        List<String> options = new ArrayList<>(jvmOptions);
        options.addAll(List.of("-XX:AOTCacheOutput=" + cache, "-Xlog:aot=off", "-Xlog:cds=off"));
        RunResult r = where.run(RealKvm.javaCommand(options, classPath, training.mainClass(), training.args().get()), TRAINING_LIMIT,
                OutputStream.nullOutputStream());
        if (!Files.isRegularFile(cache)) {
            List<String> lines = r.output().lines().toList();
            throw new IOException("the training run (" + training.mainClass() + ", status " + r.exitStatus()
                    + (r.timedOut() ? ", timed out" : "") + ") wrote no cache; its output ended with:\n"
                    + String.join("\n", lines.subList(Math.max(0, lines.size() - 10), lines.size())));
        }
        Files.deleteIfExists(cache.resolveSibling(CACHE_FILE + ".config")); // the training's leftover configuration
        Progress.say("start-up cache trained in %.0f s".formatted((System.nanoTime() - start) / 1e9));
    }

    /** Deletes all but the {@code kept} newest caches (with their lock files). */
    private static void prune(Path section, int kept) {
        try (Stream<Path> all = Files.list(section)) {
            List<Path> entries = all.filter(p -> Files.isDirectory(p) && !p.getFileName().toString().startsWith("."))
                    .sorted(Comparator.comparing(RigJvmCache::modified).reversed()).toList();
            for (Path old : entries.subList(Math.min(kept, entries.size()), entries.size())) {
                PanamaxCache.deleteTree(old);
                Files.deleteIfExists(old.resolveSibling(old.getFileName() + ".lock"));
            }
        } catch (IOException | UncheckedIOException e) {
            // old caches only cost disk space
        }
    }

    private static long modified(Path p) {
        try {
            return Files.getLastModifiedTime(p).toMillis();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The command that starts {@code mainClass} with this cache: {@code jvmOptions} as the training had them. */
    List<String> javaCommand(List<String> jvmOptions, String mainClass, List<String> args) {
        List<String> options = new ArrayList<>(jvmOptions);
        // Silent: a JVM that finds the cache stale (a jar rebuilt under a running test) says so on stdout, which tests read.
        options.addAll(List.of("-XX:AOTCache=" + cache, "-Xlog:aot=off", "-Xlog:cds=off"));
        return RealKvm.javaCommand(options, classPath, mainClass, args);
    }

    /** The class path the cache's JVMs run with: the running one's jars, then its directories. */
    String classPath() {
        return classPath;
    }
}
