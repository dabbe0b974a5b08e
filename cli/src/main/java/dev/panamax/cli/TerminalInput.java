package dev.panamax.cli;

import dev.panamax.api.VirtualMachine;
import java.io.File;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The keyboard for a guest's serial console: this process's standard input, with the terminal (if
 * it is one) in raw mode while the guest runs, so that every key, Ctrl-C included, goes to the
 * guest. Ctrl-] ends the VM. The terminal is restored when this closes, at exit or on a signal.
 */
final class TerminalInput implements AutoCloseable {
    private static final int CTRL_RIGHT_BRACKET = 0x1d;

    private final String savedMode; // stty settings to restore, or null when not a raw terminal
    private final Thread shutdownHook;

    private TerminalInput(String savedMode) {
        this.savedMode = savedMode;
        this.shutdownHook = savedMode == null ? null : new Thread(this::restore, "terminal-restore");
        if (shutdownHook != null) {
            Runtime.getRuntime().addShutdownHook(shutdownHook);
        }
    }

    /** Switches an interactive terminal to raw mode; on anything else, changes nothing. */
    static TerminalInput open() {
        if (System.console() != null && System.console().isTerminal()) {
            String saved = stty("-g");
            if (saved != null && stty("raw", "-echo") != null) {
                System.err.print("panamax: the console is raw: keys go to the guest; Ctrl-] ends the VM\r\n");
                return new TerminalInput(saved);
            }
        }
        return new TerminalInput(null);
    }

    /** Standard input, ending (after calling {@code onQuit}) where a raw terminal's user typed Ctrl-]. */
    InputStream keys(Runnable onQuit) {
        if (savedMode == null) {
            return System.in;
        }
        return new FilterInputStream(System.in) {
            private boolean quit;

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (quit) {
                    return -1;
                }
                int n = super.read(b, off, len);
                for (int i = 0; i < n; i++) {
                    if (b[off + i] == CTRL_RIGHT_BRACKET) {
                        quit = true;
                        onQuit.run();
                        return i == 0 ? -1 : i;
                    }
                }
                return n;
            }
        };
    }

    /** Copies {@code keys} to the guest's console on a thread of its own, as fast as the guest takes them. */
    static void feed(VirtualMachine vm, InputStream keys) {
        Thread.ofPlatform().daemon().name("console-input").start(() -> {
            byte[] buffer = new byte[1024];
            try {
                for (int n; (n = keys.read(buffer)) > 0; ) {
                    offer(vm, Arrays.copyOf(buffer, n));
                }
            } catch (IOException | IllegalStateException e) {
                // input closed, or the VM ended: no more keys
            }
        });
    }

    /** Hands bytes to the UART, waiting while its buffer is full (the guest reads at its own pace). */
    private static void offer(VirtualMachine vm, byte[] bytes) {
        int sent = 0;
        while (sent < bytes.length) {
            int taken = vm.sendConsoleInput(Arrays.copyOfRange(bytes, sent, bytes.length));
            sent += taken;
            if (taken == 0) {
                try {
                    Thread.sleep(10);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }
    }

    /** Runs stty on the controlling terminal; returns its output, or null when it failed. */
    private static String stty(String... args) {
        try {
            List<String> argv = new ArrayList<>(List.of("stty"));
            argv.addAll(List.of(args));
            Process p = new ProcessBuilder(argv).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/tty")))
                    .redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes()).strip();
            return p.waitFor() == 0 ? out : null;
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    private void restore() {
        if (savedMode != null) {
            stty(savedMode);
        }
    }

    @Override
    public void close() {
        restore();
        if (shutdownHook != null) {
            try {
                Runtime.getRuntime().removeShutdownHook(shutdownHook);
            } catch (IllegalStateException e) {
                // already shutting down: the hook restores the terminal
            }
        }
    }
}
