package dev.panamax.rig;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** This host, when its own /dev/kvm is hardware-accelerated: commands run as plain child processes. */
public final class HostKvm implements RealKvm {

    @Override
    public RunResult run(List<String> argv, Duration timeout, OutputStream echo, InputStream input) {
        long start = System.nanoTime();
        OutputTail out = new OutputTail(echo);
        try {
            Process p = new ProcessBuilder(argv).redirectErrorStream(true)
                    .redirectInput(input == null ? ProcessBuilder.Redirect.from(new java.io.File("/dev/null")) : ProcessBuilder.Redirect.PIPE)
                    .start();
            if (input != null) {
                Thread.ofPlatform().daemon().name("host-kvm-input").start(() -> {
                    try (OutputStream stdin = p.getOutputStream()) {
                        byte[] buf = new byte[4096];
                        for (int n; (n = input.read(buf)) > 0; ) {
                            stdin.write(buf, 0, n);
                            stdin.flush();
                        }
                    } catch (IOException ignored) {
                        // the process ended or the input failed: its stdin ends here
                    }
                });
            }
            Thread pump = Thread.ofPlatform().daemon().name("host-kvm-output").start(() -> {
                try (InputStream in = p.getInputStream()) {
                    in.transferTo(out);
                } catch (IOException ignored) {
                    // the process was killed; its output ends here
                }
            });
            boolean timedOut = !p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
            if (timedOut) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
            }
            int status = p.waitFor();
            pump.join();
            return new RunResult(status, timedOut, Duration.ofNanos(System.nanoTime() - start), out.text());
        } catch (IOException e) {
            throw new UncheckedIOException("could not start " + argv.getFirst() + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while running " + argv.getFirst(), e);
        }
    }
}
