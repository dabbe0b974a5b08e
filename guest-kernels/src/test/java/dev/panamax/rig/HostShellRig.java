package dev.panamax.rig;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** A stand-in for the rig in the daemon's tests: scripts run on this host under {@code sh}, one at a time. */
final class HostShellRig implements DaemonRig {
    private final Rig.Options options;
    private final Path scratch;
    private volatile Process current;
    private volatile boolean closed;
    private volatile String died; // why it stopped on its own (as a rig whose QEMU died), or null

    HostShellRig(Rig.Options options) {
        this.options = options;
        try {
            this.scratch = Files.createTempDirectory("host-shell-rig-");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public synchronized RunResult runScript(String script, String label, Duration timeout, OutputStream echo, InputStream input) {
        if (closed) throw new IllegalStateException("the rig is stopped");
        long start = System.nanoTime();
        OutputTail out = new OutputTail(echo);
        try {
            Process p = new ProcessBuilder(List.of("setsid", "sh", "-c", script)).redirectErrorStream(true)
                    .redirectInput(input == null ? ProcessBuilder.Redirect.from(new java.io.File("/dev/null")) : ProcessBuilder.Redirect.PIPE)
                    .start();
            current = p;
            if (input != null) {
                Thread.ofPlatform().daemon().start(() -> {
                    try (OutputStream stdin = p.getOutputStream()) {
                        input.transferTo(stdin);
                    } catch (IOException ignored) {
                        // the process ended
                    }
                });
            }
            Thread pump = Thread.ofPlatform().daemon().start(() -> {
                try (InputStream in = p.getInputStream()) {
                    in.transferTo(out);
                } catch (IOException ignored) {
                    // killed
                }
            });
            boolean timedOut = !p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
            if (timedOut) killRun();
            int status = p.waitFor();
            pump.join();
            return new RunResult(status, timedOut, Duration.ofNanos(System.nanoTime() - start), out.text());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        } finally {
            current = null;
        }
    }

    @Override
    public void killRun() {
        Process p = current;
        if (p != null) { // the shell first, so that it runs nothing more once its child is killed (the rig kills the group at once)
            List<ProcessHandle> children = p.descendants().toList();
            p.destroyForcibly();
            children.forEach(ProcessHandle::destroyForcibly);
        }
    }

    @Override
    public Path scratch() {
        return scratch;
    }

    @Override
    public boolean isStopped() {
        return closed || died != null;
    }

    /** Stops as a rig whose QEMU died does, behind the daemon's back. */
    void die(String why) {
        died = why;
        killRun();
    }

    @Override
    public String whyStopped() {
        return died != null ? died : closed ? "it was stopped" : "it runs";
    }

    @Override
    public Rig.Options options() {
        return options;
    }

    @Override
    public void close() {
        closed = true;
        killRun();
        try {
            Files.deleteIfExists(scratch); // the tests leave nothing in it
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
