package dev.panamax.guest;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.function.Consumer;

/**
 * Runs a tool on the host (apt-get, dpkg-deb, make) with its output read line by line, and turns a
 * non-zero exit into an exception that quotes the last lines of that output.
 */
public final class HostCommand {
    private static final int TAIL_LINES = 30;

    private HostCommand() {}

    /** Runs {@code argv} in {@code dir} (null: the current directory) and returns its standard output. */
    public static String output(Path dir, List<String> argv) {
        StringBuilder out = new StringBuilder();
        run(dir, argv, line -> out.append(line).append('\n'));
        return out.toString();
    }

    /**
     * Runs {@code argv} with stderr merged into stdout, handing each line to {@code lines}.
     *
     * @throws HostCommandException when the command cannot start or exits non-zero
     */
    public static void run(Path dir, List<String> argv, Consumer<String> lines) {
        ProcessBuilder pb = new ProcessBuilder(argv).redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        if (dir != null) pb.directory(dir.toFile());
        pb.environment().put("LC_ALL", "C");
        pb.environment().put("DEBIAN_FRONTEND", "noninteractive");
        Deque<String> tail = new ArrayDeque<>();
        int status;
        try {
            Process p = pb.start();
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    if (tail.size() == TAIL_LINES) tail.removeFirst();
                    tail.addLast(line);
                    lines.accept(line);
                }
            }
            status = p.waitFor();
        } catch (IOException e) {
            throw new HostCommandException(argv.getFirst() + " could not be started: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new HostCommandException("interrupted while running " + String.join(" ", argv), e);
        }
        if (status != 0) {
            throw new HostCommandException("`" + String.join(" ", argv) + "` exited with status " + status
                    + (tail.isEmpty() ? "" : "; its last output:\n  " + String.join("\n  ", tail)));
        }
    }

    /** A host tool failed; the message holds the command and the end of its output. */
    public static final class HostCommandException extends UncheckedIOException {
        HostCommandException(String message) {
            super(message, new IOException(message));
        }

        HostCommandException(String message, Exception cause) {
            super(message, cause instanceof IOException io ? io : new IOException(cause));
        }
    }
}
