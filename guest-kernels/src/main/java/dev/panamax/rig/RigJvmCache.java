package dev.panamax.rig;

import dev.panamax.guest.PanamaxCache;
import dev.panamax.guest.Progress;
import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;

/**
 * An ahead-of-time cache (JDK 25: classes loaded and linked, lambda forms, method profiles; JEP 483,
 * 515) for the JVMs a program starts in the rig. On QEMU's software CPU a Panamax JVM loads and links
 * some 3,000 classes, at about 150 a second, before its guest runs: a restore took 18-19 s to its
 * guest's first line, 12-15 s with a cache trained on a boot, in the rig. One cache per class path
 * and build, trained once in the rig on the options' {@link Rig.JvmTraining} and kept in the Panamax
 * cache, where later runs of the same build find it.
 *
 * <p>A cache records only classes from jars: each directory on the class path (a module's
 * {@code target/test-classes}) is copied into a jar of its own, and the JVMs get that class path. A
 * JVM finds a cache stale by the jars' sizes and times and starts without it, as it does here when
 * training fails: a cache only saves time.
 */
final class RigJvmCache {
    private static final String CACHE_FILE = "jvm.aot";
    /** Caches of other builds kept (about 22 MB each): a few class paths (modules) of the last build or two. */
    private static final int CACHES_KEPT = 4;
    private static final int CLASS_JARS_KEPT = 12;
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
     * through {@code where} (the rig) if this build has none; empty if it could not be made.
     */
    static Optional<RigJvmCache> prepare(Rig.JvmTraining training, List<String> jvmOptions, RealKvm where) {
        return prepare(training, jvmOptions, where, PanamaxCache.root());
    }

    /** {@link #prepare} with the cache's sections under {@code root}. */
    static synchronized Optional<RigJvmCache> prepare(Rig.JvmTraining training, List<String> jvmOptions, RealKvm where, Path root) {
        String classPath = System.getProperty("java.class.path");
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
        List<String> entries = new ArrayList<>();
        StringBuilder key = new StringBuilder(Runtime.version().toString()).append(System.getProperty("java.home"))
                .append(jvmOptions).append(training.mainClass());
        for (String entry : runningClassPath.split(File.pathSeparator)) {
            Path p = Path.of(entry).toAbsolutePath().normalize();
            if (Files.isDirectory(p)) {
                if (isEmpty(p)) continue;
                p = jarOf(p, root.resolve("rig-classes"));
            } else if (!Files.isRegularFile(p)) {
                continue; // a missing entry holds no classes
            }
            entries.add(p.toString());
            key.append(p).append(Files.size(p)).append(Files.getLastModifiedTime(p));
        }
        String classPath = String.join(File.pathSeparator, entries);
        Path dir = root.resolve("rig-jvm").resolve(PanamaxCache.hash(key.toString(), 20));
        if (!Files.isDirectory(dir)) {
            PanamaxCache.entry(dir, tmp -> train(training, jvmOptions, classPath, tmp.resolve(CACHE_FILE), where));
            prune(dir.getParent(), CACHES_KEPT);
        }
        return new RigJvmCache(classPath, dir.resolve(CACHE_FILE));
    }

    /** Runs the training in the rig with the JVM writing its cache to {@code cache} when it ends. */
    private static void train(Rig.JvmTraining training, List<String> jvmOptions, String classPath, Path cache, RealKvm where)
            throws IOException {
        Progress.say("training a start-up cache for the JVMs in the rig (once per build of the class path; about a minute)");
        long start = System.nanoTime();
        List<String> options = new ArrayList<>(jvmOptions);
        options.addAll(List.of("-XX:AOTCacheOutput=" + cache, "-Xlog:aot=off", "-Xlog:cds=off"));
        RunResult r = where.run(RealKvm.javaCommand(options, classPath, training.mainClass(), training.args().get()), TRAINING_LIMIT,
                OutputStream.nullOutputStream());
        if (!Files.isRegularFile(cache)) {
            throw new IOException("the training run (" + training.mainClass() + ", status " + r.exitStatus()
                    + (r.timedOut() ? ", timed out" : "") + ") wrote no cache; its output ended with:\n"
                    + r.output().lines().skip(Math.max(0, r.output().lines().count() - 10)).reduce("", (a, b) -> a + b + "\n"));
        }
        Files.deleteIfExists(cache.resolveSibling(CACHE_FILE + ".config")); // the training's leftover configuration
        Progress.say("start-up cache trained in %.0f s".formatted((System.nanoTime() - start) / 1e9));
    }

    /** A jar of the classes and resources under {@code dir}, made once per content of it. */
    private static Path jarOf(Path dir, Path section) throws IOException {
        List<Path> files;
        try (Stream<Path> all = Files.walk(dir)) {
            files = all.filter(f -> Files.isRegularFile(f) && !dir.relativize(f).toString().equals(JarFile.MANIFEST_NAME)).sorted().toList();
        }
        StringBuilder key = new StringBuilder(dir.toString());
        for (Path f : files) {
            BasicFileAttributes a = Files.readAttributes(f, BasicFileAttributes.class);
            key.append('\n').append(dir.relativize(f)).append(' ').append(a.size()).append(' ').append(a.lastModifiedTime());
        }
        Path entry = section.resolve(PanamaxCache.hash(key.toString(), 20));
        if (!Files.isDirectory(entry)) {
            PanamaxCache.entry(entry, tmp -> {
                Manifest manifest = new Manifest(); // with one, as every jar has (PrivilegeDrop opens jars by looking for it)
                manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
                try (JarOutputStream jar = new JarOutputStream(Files.newOutputStream(tmp.resolve("classes.jar")), manifest)) {
                    for (Path f : files) {
                        jar.putNextEntry(new JarEntry(dir.relativize(f).toString().replace(File.separatorChar, '/')));
                        Files.copy(f, jar);
                        jar.closeEntry();
                    }
                }
            });
            prune(entry.getParent(), CLASS_JARS_KEPT);
        }
        return entry.resolve("classes.jar");
    }

    private static boolean isEmpty(Path dir) throws IOException {
        try (Stream<Path> all = Files.walk(dir)) {
            return all.noneMatch(Files::isRegularFile);
        }
    }

    /** Deletes all but the {@code kept} newest entries of a cache section (with their lock files). */
    private static void prune(Path section, int kept) {
        try (Stream<Path> all = Files.list(section)) {
            List<Path> entries = all.filter(p -> Files.isDirectory(p) && !p.getFileName().toString().startsWith("."))
                    .sorted(Comparator.comparing(RigJvmCache::modified).reversed()).toList();
            for (Path old : entries.subList(Math.min(kept, entries.size()), entries.size())) {
                PanamaxCache.deleteTree(old);
                Files.deleteIfExists(old.resolveSibling(old.getFileName() + ".lock"));
            }
        } catch (IOException | UncheckedIOException e) {
            // old entries only cost disk space
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

    /** The class path the cache's JVMs run with: the running one's, directories as jars. */
    String classPath() {
        return classPath;
    }
}
