package dev.panamax.virtio.net;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Commands on this host for network tests (ip, ip netns), and what the test run may do. */
final class Host {
    private Host() {}

    /** Runs {@code argv}; returns its output, or fails the test with it when the command fails. */
    static String run(String... argv) {
        try {
            Process p = new ProcessBuilder(argv).redirectErrorStream(true).start();
            p.getOutputStream().close();
            String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError(String.join(" ", argv) + " did not finish in 60 s");
            }
            if (p.exitValue() != 0) {
                throw new AssertionError(String.join(" ", argv) + " failed with status " + p.exitValue() + ": " + output);
            }
            return output;
        } catch (IOException e) {
            throw new AssertionError("cannot run " + String.join(" ", argv) + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** Whether this process holds every one of the capabilities numbered {@code capabilities} (linux/capability.h). */
    static boolean hasCapabilities(int... capabilities) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("CapEff:")) {
                    long effective = Long.parseUnsignedLong(line.substring("CapEff:".length()).strip(), 16);
                    for (int c : capabilities) if ((effective & (1L << c)) == 0) return false;
                    return true;
                }
            }
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        return false;
    }

    static final int CAP_NET_ADMIN = 12;
    static final int CAP_SYS_ADMIN = 21;

    /** The lines of {@code ip} output, for parsing. */
    static List<String> lines(String... argv) {
        return run(argv).lines().filter(l -> !l.isBlank()).toList();
    }
}
