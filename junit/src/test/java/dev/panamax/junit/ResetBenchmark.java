package dev.panamax.junit;

import dev.panamax.guest.GuestImages;
import dev.panamax.rig.HostKvm;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RunResult;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A class of N tests run as panamax-junit runs them, two ways: with fast reset (one guest server booted
 * and snapshotted, the snapshot restored before each test from the second on) or with a guest booted
 * for each test (a server started, booted, asked, stopped, as for a class of one test). Each test runs
 * one command that fails when the test before left its file ({@code /tmp/marker}) and leaves one.
 * Where /dev/kvm is real KVM (in the rig: {@code integration-tests/scripts/reset-vs-boot.sh}).
 *
 * <p>Arguments: {@code reset|boot [TESTS [KERNEL INITRAMFS]]} (the built-in guest unless given). Prints
 * {@code MODE total-ms N} and, with reset, the median reset's ms; exits 1 when a test's command failed.
 */
public final class ResetBenchmark {
    private static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(60);
    private static final Duration BOOT_TIMEOUT = Duration.ofMinutes(10);
    private static final List<String> TEST_COMMAND = List.of("sh", "-c", "test ! -e /tmp/marker && echo x > /tmp/marker");

    private ResetBenchmark() {}

    public static void main(String[] args) {
        if (args.length < 1 || !(args[0].equals("reset") || args[0].equals("boot"))) {
            System.err.println("usage: ResetBenchmark reset|boot [TESTS [KERNEL INITRAMFS]]");
            System.exit(2);
        }
        boolean reset = args[0].equals("reset");
        int tests = args.length > 1 ? Integer.parseInt(args[1]) : 10;
        Path kernel = args.length > 3 ? Path.of(args[2]) : GuestImages.defaultVmlinux();
        Path initramfs = args.length > 3 ? Path.of(args[3]) : GuestImages.defaultInitramfs();
        GuestSpec spec = new GuestSpec(kernel.toAbsolutePath(), initramfs.toAbsolutePath(), List.of(), 1, 256, reset ? Reset.SNAPSHOT : Reset.NONE);
        RealKvm here = new ServersAsInTheRig();
        int failed = 0;
        List<Long> resets = new ArrayList<>();
        long start = System.nanoTime();
        if (reset) {
            try (GuestConnection guest = start(here, spec)) {
                for (int i = 0; i < tests; i++) {
                    if (i > 0) resets.add(guest.reset().toMillis());
                    if (!guest.exec(COMMAND_TIMEOUT, TEST_COMMAND).succeeded()) failed++;
                }
                // (a reset whose restored guest never served is restored once more: rare, and worth seeing)
                guest.serverLogTail(GuestConnection.LOG_LINES_KEPT).lines().filter(l -> l.contains("once more")).forEach(System.err::println);
            }
        } else {
            for (int i = 0; i < tests; i++) {
                try (GuestConnection guest = start(here, spec)) {
                    if (!guest.exec(COMMAND_TIMEOUT, TEST_COMMAND).succeeded()) failed++;
                }
            }
        }
        long totalMs = (System.nanoTime() - start) / 1_000_000;
        String line = args[0] + " " + totalMs + " " + tests;
        if (reset) line += " " + resets.stream().sorted().toList().get(resets.size() / 2);
        System.out.println(line);
        if (failed > 0) System.err.println(failed + " of " + tests + " tests found the file an earlier test left");
        System.exit(failed > 0 ? 1 : 0);
    }

    private static GuestConnection start(RealKvm here, GuestSpec spec) {
        return GuestConnection.start(here, "this host", GuestServer.class.getName(), spec.serverArgs(), COMMAND_TIMEOUT, BOOT_TIMEOUT);
    }

    /** This host, its guest servers' JVMs started with the options the rig gives its JVMs (C1 only), as the library's are there. */
    private static final class ServersAsInTheRig implements RealKvm {
        private final HostKvm host = new HostKvm();

        @Override
        public RunResult run(List<String> argv, Duration timeout, OutputStream echo, InputStream input) {
            return host.run(argv, timeout, echo, input);
        }

        @Override
        public List<String> jvmOptions() {
            return Rig.JVM_OPTIONS;
        }
    }
}
