package dev.panamax.guest;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Builds the tiny guest kernel from Debian's {@code linux-source-6.1}: {@code make tinyconfig}, the
 * fragment {@code tiny-guest.config} merged on top, then {@code vmlinux} and {@code bzImage}. The
 * result lands in {@code <cache>/kernels/<source-version>-<config-hash>/}, named after the source
 * actually unpacked.
 *
 * <p>A build of the same config is reused whatever its source version (the newest, when there are
 * several): a Debian point release of the source does not cost a rebuild. A changed config builds
 * anew; deleting {@code <cache>/kernels} builds from the source apt offers now.
 */
public final class KernelBuild {
    static final String SOURCE_PACKAGE = "linux-source-6.1";
    static final String CONFIG_RESOURCE = "tiny-guest.config";
    /** Build tools (installed when missing); the source itself is only downloaded and unpacked. */
    static final String[] TOOLS = {"make", "gcc", "bc", "flex", "bison", "libelf-dev", "libssl-dev", "xz-utils"};
    /** Compiler steps ("  CC ...") of a full build of this config, measured; only used to show progress. */
    private static final int EXPECTED_COMPILE_STEPS = 1050;

    private KernelBuild() {}

    /** The config fragment as shipped in this module. */
    public static String configFragment() {
        return Resources.text(KernelBuild.class, CONFIG_RESOURCE);
    }

    /** The cache directory holding {@code vmlinux}, {@code bzImage} and {@code config}, built on first use. */
    public static Path ensureBuilt() {
        String fragment = configFragment();
        String configHash = PanamaxCache.hash(String.join("\n", options(fragment)), 12);
        Path kernels = PanamaxCache.root().resolve("kernels");
        Optional<Path> built = newestBuild(kernels, configHash);
        if (built.isPresent()) {
            return built.get();
        }
        // The tools first: installing them may refresh apt's lists, and so the source version unpacked.
        DebianPackages.ensureInstalled(TOOLS);
        Path source = DebianPackages.unpacked(SOURCE_PACKAGE);
        String version = source.getFileName().toString().substring(SOURCE_PACKAGE.length() + 1);
        Path entry = PanamaxCache.dir("kernels", version + "-" + configHash);
        return PanamaxCache.entry(entry, out -> build(fragment, source, out));
    }

    /** The newest finished build of the config hashed {@code configHash} in {@code kernels}, of any source version. */
    static Optional<Path> newestBuild(Path kernels, String configHash) {
        if (!Files.isDirectory(kernels)) {
            return Optional.empty();
        }
        try (var entries = Files.list(kernels)) {
            // A build in progress is a ".tmp-" sibling until it is complete and renamed.
            return entries.filter(p -> !p.getFileName().toString().startsWith(".") && p.getFileName().toString().endsWith("-" + configHash)
                    && Files.isRegularFile(p.resolve("bzImage")) && Files.isRegularFile(p.resolve("vmlinux")))
                    .max(Comparator.comparing(KernelBuild::modified));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list the kernel cache " + kernels + ": " + e.getMessage(), e);
        }
    }

    private static FileTime modified(Path p) {
        try {
            return Files.getLastModifiedTime(p);
        } catch (IOException e) {
            return FileTime.fromMillis(0);
        }
    }

    private static void build(String fragment, Path source, Path out) throws IOException {
        Path tarball;
        try (var s = Files.list(source.resolve("usr/src"))) {
            tarball = s.filter(p -> p.getFileName().toString().matches("linux-source-.*\\.tar\\.(xz|bz2|gz)")).findFirst()
                    .orElseThrow(() -> new IOException("no linux-source tarball in " + source.resolve("usr/src")));
        }
        long start = System.nanoTime();
        Progress.say("building the tiny guest kernel into " + out.getParent()
                + " (about 4 minutes on 2 idle cores, longer when they are busy; later runs reuse it)");
        Path work = out.resolve("build");
        Files.createDirectories(work);
        try {
            Progress.say("unpacking " + tarball.getFileName());
            HostCommand.run(work, List.of("tar", "xf", tarball.toString(), "--strip-components=1"), line -> {});
            make(work, List.of("tinyconfig"));
            Path fragmentFile = work.resolve("panamax.config");
            Files.writeString(fragmentFile, fragment);
            HostCommand.run(work, List.of("scripts/kconfig/merge_config.sh", "-m", ".config", fragmentFile.toString()), line -> {});
            make(work, List.of("olddefconfig"));
            checkConfig(fragment, Files.readString(work.resolve(".config")));

            AtomicInteger steps = new AtomicInteger();
            AtomicLong lastReport = new AtomicLong(System.nanoTime());
            List<String> argv = new ArrayList<>(List.of("make", "-j" + Math.max(2, Runtime.getRuntime().availableProcessors()),
                    "vmlinux", "bzImage"));
            HostCommand.run(work, argv, line -> {
                if (line.startsWith("  CC") || line.startsWith("  AS")) steps.incrementAndGet();
                long now = System.nanoTime();
                if (now - lastReport.get() > TimeUnit.SECONDS.toNanos(20)) {
                    lastReport.set(now);
                    int n = steps.get();
                    Progress.say("kernel build: %d of about %d compile steps (%d%%), %s elapsed".formatted(n,
                            EXPECTED_COMPILE_STEPS, Math.min(99, n * 100 / EXPECTED_COMPILE_STEPS),
                            Progress.seconds(TimeUnit.NANOSECONDS.toSeconds(now - start))));
                }
            });
            Files.move(work.resolve("vmlinux"), out.resolve("vmlinux"));
            Files.move(work.resolve("arch/x86/boot/bzImage"), out.resolve("bzImage"));
            Files.copy(work.resolve(".config"), out.resolve("config"), StandardCopyOption.REPLACE_EXISTING);
        } finally {
            PanamaxCache.deleteTree(work);
        }
        Progress.say("kernel built in " + Progress.seconds(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start)));
    }

    private static void make(Path work, List<String> targets) {
        List<String> argv = new ArrayList<>(List.of("make"));
        argv.addAll(targets);
        HostCommand.run(work, argv, line -> {});
    }

    /** The option lines of a config fragment ({@code CONFIG_X=v} and {@code # CONFIG_X is not set}), comments left out. */
    static List<String> options(String fragment) {
        return fragment.lines().map(String::strip).filter(l -> OPTION.matcher(l).matches()).toList();
    }

    private static final java.util.regex.Pattern OPTION =
            java.util.regex.Pattern.compile("CONFIG_\\w+=.*|# CONFIG_\\w+ is not set");

    /** Fails when an option of the fragment did not survive olddefconfig as written (typo or unmet dependency). */
    static void checkConfig(String fragment, String finalConfig) {
        List<String> finalLines = finalConfig.lines().toList();
        List<String> lost = options(fragment).stream().filter(option -> {
            if (option.startsWith("CONFIG_")) return !finalLines.contains(option);
            String name = option.substring(2, option.indexOf(' ', 2));
            return finalLines.stream().anyMatch(l -> l.startsWith(name + "=")); // "is not set" may also be absent
        }).toList();
        if (!lost.isEmpty()) {
            throw new IllegalStateException("the kernel config lost these options of " + CONFIG_RESOURCE
                    + " (an unmet dependency or a typo): " + String.join(" ", lost));
        }
    }
}
