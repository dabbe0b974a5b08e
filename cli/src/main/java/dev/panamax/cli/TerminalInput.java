package dev.panamax.cli;

import dev.panamax.api.VirtualMachine;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.List;

/**
 * Feeds this process's standard input to the guest's serial console. On an interactive terminal it
 * switches the terminal to raw mode (every key, Ctrl-C included, goes to the guest; Ctrl-] kills
 * the VM) and restores it when closed, at exit or on a signal.
 */
final class TerminalInput implements AutoCloseable {
    private static final int CTRL_RIGHT_BRACKET = 0x1d;

    private final String savedMode; // stty settings to restore, or null when not a terminal
    private final Thread shutdownHook;

    private TerminalInput(VirtualMachine vm, String savedMode) {
        this.savedMode = savedMode;
        this.shutdownHook = savedMode == null ? null : new Thread(this::restore, "terminal-restore");
        if (shutdownHook != null) {
            Runtime.getRuntime().addShutdownHook(shutdownHook);
        }
        Thread.ofPlatform().daemon().name("console-input").start(() -> pump(vm, System.in, savedMode != null));
    }

    static TerminalInput start(VirtualMachine vm) {
        String saved = null;
        if (System.console() != null && System.console().isTerminal()) {
            saved = stty("-g");
            if (saved != null && stty("raw", "-echo") != null) {
                System.err.print("panamax: the console is raw: keys go to the guest; Ctrl-] kills the VM\r\n");
            } else {
                saved = null;
            }
        }
        return new TerminalInput(vm, saved);
    }

    private static void pump(VirtualMachine vm, InputStream in, boolean raw) {
        byte[] buffer = new byte[1024];
        try {
            for (int n; (n = in.read(buffer)) > 0; ) {
                if (raw) {
                    int quit = indexOf(buffer, n, CTRL_RIGHT_BRACKET);
                    if (quit >= 0) {
                        offer(vm, Arrays.copyOf(buffer, quit));
                        vm.kill();
                        return;
                    }
                }
                offer(vm, Arrays.copyOf(buffer, n));
            }
        } catch (IOException e) {
            // standard input closed: the guest simply gets no more input
        } catch (IllegalStateException e) {
            // the VM has ended
        }
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

    private static int indexOf(byte[] bytes, int length, int value) {
        for (int i = 0; i < length; i++) {
            if (bytes[i] == value) {
                return i;
            }
        }
        return -1;
    }

    /** Runs stty on the controlling terminal; returns its output, or null when it failed. */
    private static String stty(String... args) {
        try {
            List<String> argv = new java.util.ArrayList<>(List.of("stty"));
            argv.addAll(List.of(args));
            Process p = new ProcessBuilder(argv).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/tty")))
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
