package dev.panamax.guest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Debian's package registry as the one source of everything the builds and the rig need: tools are
 * installed with apt-get ({@link #ensureInstalled}), while kernels and sources are only downloaded and
 * unpacked into the cache, keyed by package version ({@link #unpacked}), never installed.
 */
public final class DebianPackages {
    private static final Object APT = new Object();
    private static boolean updated; // apt-get update runs at most once per JVM, before the first install

    private DebianPackages() {}

    /** Installs those of {@code packages} that are not installed yet (as root, with apt-get). */
    public static void ensureInstalled(String... packages) {
        synchronized (APT) {
            List<String> missing = new ArrayList<>();
            for (String p : packages) if (installedVersion(p) == null) missing.add(p);
            if (missing.isEmpty()) return;
            String names = String.join(" ", missing);
            if (!"root".equals(System.getProperty("user.name"))) {
                throw new MissingIngredientException("Debian package(s) " + names + " are needed and not installed;"
                        + " install them with `sudo apt-get install " + names + "`.");
            }
            Progress.say("installing Debian package(s) " + names + " with apt-get (usually well under a minute)");
            try {
                update();
                List<String> argv = new ArrayList<>(List.of("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q",
                        "--no-install-recommends"));
                argv.addAll(missing);
                HostCommand.run(null, argv, line -> {});
            } catch (HostCommand.HostCommandException e) {
                throw new MissingIngredientException("Debian package(s) " + names + " are needed and could not be installed"
                        + " (" + firstLine(e.getMessage()) + "); install them with `apt-get install " + names + "`.", e);
            }
        }
    }

    /**
     * The installed version of {@code pkg}, or null when it is not installed (or this is no Debian).
     * Read from dpkg's status file, as {@code dpkg-query -W} reads it: every {@code run} of the built-in
     * guest asks, and starting dpkg-query cost it about 20 ms each time.
     */
    public static String installedVersion(String pkg) {
        String status;
        try {
            status = Files.readString(Path.of(System.getenv().getOrDefault("DPKG_ADMINDIR", "/var/lib/dpkg"), "status"),
                    StandardCharsets.ISO_8859_1); // one byte per char: fast to search, and field names are ASCII
        } catch (IOException e) {
            return null;
        }
        return installedVersion(status, pkg);
    }

    /** {@link #installedVersion(String)} in the text of a dpkg status file: stanzas of fields, a blank line between. */
    static String installedVersion(String status, String pkg) {
        String header = "Package: " + pkg + "\n";
        for (int at = status.startsWith(header) ? 0 : status.indexOf("\n" + header); at >= 0; at = status.indexOf("\n" + header, at + 1)) {
            int end = status.indexOf("\n\n", at + 1);
            String installed = null;
            String version = null;
            for (String line : status.substring(at, end < 0 ? status.length() : end).split("\n")) {
                if (line.startsWith("Status: ")) installed = line.endsWith(" installed") ? line : null;
                else if (line.startsWith("Version: ")) version = line.substring("Version: ".length()).strip();
            }
            if (installed != null && version != null) return version; // of a multi-arch package's stanzas, the first installed
        }
        return null;
    }

    /** The version apt would fetch for {@code pkg} now. */
    public static String candidateVersion(String pkg) {
        synchronized (APT) {
            String v = candidateOrNull(pkg);
            if (v == null && !updated) {
                update();
                v = candidateOrNull(pkg);
            }
            if (v == null) {
                throw new MissingIngredientException("Debian package " + pkg + " is not known to apt on this machine;"
                        + " run `apt-get update` (and check /etc/apt/sources.list) so that `apt-get download " + pkg + "` works.");
            }
            return v;
        }
    }

    /** The name of the first package that metapackage {@code meta} depends on (e.g. linux-image-amd64 to linux-image-6.1.0-N-amd64). */
    public static String dependencyOf(String meta) {
        candidateVersion(meta); // makes sure the package lists know it
        String out = HostCommand.output(null, List.of("apt-cache", "depends", meta));
        return out.lines().map(String::strip).filter(l -> l.startsWith("Depends: "))
                .map(l -> l.substring("Depends: ".length()).strip()).findFirst()
                .orElseThrow(() -> new MissingIngredientException("apt-cache shows no dependency of " + meta
                        + "; check with `apt-cache depends " + meta + "`."));
    }

    /**
     * The contents of {@code pkg}'s .deb at its candidate version, unpacked with dpkg-deb into
     * {@code <cache>/debs/<pkg>_<version>/} on first use (the package is never installed). A
     * candidate the mirror no longer has (apt's lists were old) is looked up again after {@code
     * apt-get update}, once.
     */
    public static Path unpacked(String pkg) {
        try {
            return unpacked(pkg, candidateVersion(pkg));
        } catch (MissingIngredientException e) {
            synchronized (APT) {
                if (updated || !"root".equals(System.getProperty("user.name"))) {
                    throw e;
                }
                update();
            }
            return unpacked(pkg, candidateVersion(pkg));
        }
    }

    private static Path unpacked(String pkg, String version) {
        Path entry = PanamaxCache.dir("debs", pkg + "_" + version);
        return PanamaxCache.entry(entry, dir -> {
            Progress.say("downloading Debian package " + pkg + " " + version + " into " + entry);
            Path download = Files.createDirectories(dir.resolve(".download"));
            try {
                HostCommand.run(download, List.of("apt-get", "download", "-q", pkg + "=" + version), line -> {});
            } catch (HostCommand.HostCommandException e) {
                throw new MissingIngredientException("Debian package " + pkg + " " + version + " could not be downloaded ("
                        + firstLine(e.getMessage()) + "); check that `apt-get download " + pkg + "` works here.", e);
            }
            try (Stream<Path> debs = Files.list(download)) {
                for (Path deb : debs.filter(p -> p.toString().endsWith(".deb")).toList()) {
                    HostCommand.run(null, List.of("dpkg-deb", "-x", deb.toString(), dir.toString()), line -> {});
                }
            }
            PanamaxCache.deleteTree(download);
        });
    }

    private static void update() {
        if (updated) return;
        if (!"root".equals(System.getProperty("user.name"))) return; // apt-get update needs root; lookups then use what is there
        Progress.say("refreshing Debian package lists (apt-get update)");
        try {
            HostCommand.run(null, List.of("apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-q"), line -> {});
        } catch (HostCommand.HostCommandException e) {
            Progress.say("apt-get update failed, going on with the package lists there are: " + firstLine(e.getMessage()));
        }
        updated = true;
    }

    private static String candidateOrNull(String pkg) {
        try {
            String out = HostCommand.output(null, List.of("apt-cache", "policy", pkg));
            return out.lines().map(String::strip).filter(l -> l.startsWith("Candidate: "))
                    .map(l -> l.substring("Candidate: ".length()).strip())
                    .filter(v -> !v.equals("(none)")).findFirst().orElse(null);
        } catch (HostCommand.HostCommandException e) {
            return null;
        }
    }

    private static String firstLine(String s) {
        return s == null ? "" : s.lines().findFirst().orElse("");
    }

}
