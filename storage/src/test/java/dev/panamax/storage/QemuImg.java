package dev.panamax.storage;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs QEMU's image tools for interop tests. They come from Debian's qemu-utils, installed on first
 * use when missing (the build runs as root in CI); a failed installation fails the test with a sentence
 * saying what to install, rather than skipping it.
 */
public final class QemuImg {
    private static boolean installed;

    private QemuImg() {}

    public record Result(int status, String out, String err) {
        public Result expectSuccess(String what) {
            if (status != 0) throw new AssertionError(what + " failed with status " + status + ":\n" + out + err);
            return this;
        }
    }

    public static synchronized void ensureInstalled() {
        if (installed) return;
        if (!onPath("qemu-img") || !onPath("qemu-io")) {
            try {
                Result update = exec(List.of("apt-get", "update"), 600);
                Result install = exec(List.of("apt-get", "install", "-y", "qemu-utils"), 900);
                if (update.status != 0 || install.status != 0 || !onPath("qemu-img")) {
                    throw new IllegalStateException("qemu-img is missing and 'apt-get install -y qemu-utils' failed (status "
                            + install.status + "): " + install.err + "\nInstall Debian's qemu-utils by hand and rerun.");
                }
            } catch (IOException e) {
                throw new IllegalStateException("qemu-img is missing and apt-get could not be run (" + e.getMessage()
                        + "); install Debian's qemu-utils and rerun", e);
            }
        }
        installed = true;
    }

    private static boolean onPath(String tool) {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            if (Files.isExecutable(Path.of(dir, tool))) return true;
        }
        return false;
    }

    /** Runs {@code qemu-img args...}. */
    public static Result img(String... args) throws IOException {
        ensureInstalled();
        List<String> cmd = new ArrayList<>(List.of("qemu-img"));
        cmd.addAll(List.of(args));
        return exec(cmd, 300);
    }

    /** Runs {@code qemu-io -c cmd... file}; each command is one -c. */
    public static Result io(String format, Path file, String... commands) throws IOException {
        ensureInstalled();
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", format));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(file.toString());
        return exec(cmd, 300);
    }

    static Result exec(List<String> cmd, int timeoutSeconds) throws IOException {
        Path out = Files.createTempFile("qemu-out", ".txt"), err = Files.createTempFile("qemu-err", ".txt");
        try {
            Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", cmd) + " did not finish in " + timeoutSeconds + " s");
            }
            return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                    Files.readString(err, StandardCharsets.UTF_8));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted running " + cmd, e);
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }
}
