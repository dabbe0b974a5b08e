package dev.panamax.demo;

import dev.panamax.vm.VmExit;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

/**
 * The exit round-trip benchmark: {@link DemoProgram#PORT_LOOP} run by Panamax (each port write a
 * KVM_EXIT_IO dispatched to a Java device on the vCPU thread) and by a minimal C VMM on the same
 * /dev/kvm, alternating, in one process run. Reports the median time per exit of each and the
 * ratio Java/C.
 */
public final class ExitBenchmark {
    private ExitBenchmark() {}

    /** Median nanoseconds per exit of each side, and their ratio. */
    public record Result(long iterations, int rounds, double javaNanosPerExit, double cNanosPerExit) {
        public double ratio() {
            return javaNanosPerExit / cNanosPerExit;
        }

        @Override
        public String toString() {
            return String.format("exit round trip, %d exits x %d rounds: Panamax %.0f ns/exit, C %.0f ns/exit, ratio Java/C %.3f",
                    iterations, rounds, javaNanosPerExit, cNanosPerExit, ratio());
        }
    }

    /** Compiles the C baseline with gcc into {@code workDir} and runs both sides {@code rounds} times. */
    public static Result run(long iterations, int rounds, Path workDir) throws IOException, InterruptedException {
        Path program = workDir.resolve("port-loop.bin");
        Files.write(program, DemoProgram.PORT_LOOP.code());
        Path source = workDir.resolve("exit_roundtrip.c");
        try (InputStream in = ExitBenchmark.class.getResourceAsStream("exit_roundtrip.c")) {
            Files.write(source, in.readAllBytes());
        }
        Path binary = workDir.resolve("exit_roundtrip");
        String compiler = exec("gcc", "-O2", "-o", binary.toString(), source.toString());
        if (!Files.isExecutable(binary)) {
            throw new IOException("gcc could not build the C baseline (apt-get install gcc):\n" + compiler);
        }
        runJava(iterations / 10); // warm up the JIT on the exit path
        double[] java = new double[rounds];
        double[] c = new double[rounds];
        for (int i = 0; i < rounds; i++) {
            java[i] = (double) runJava(iterations) / iterations;
            String[] out = exec(binary.toString(), program.toString(), Long.toString(iterations)).trim().split("\\s+");
            if (out.length != 2 || Long.parseLong(out[0]) != iterations) {
                throw new IOException("the C baseline failed: " + String.join(" ", out));
            }
            c[i] = Double.parseDouble(out[1]) / iterations;
        }
        return new Result(iterations, rounds, median(java), median(c));
    }

    /** Nanoseconds from starting the VM to its HLT exit. */
    private static long runJava(long iterations) {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.PORT_LOOP, 1, iterations, null)) {
            long start = System.nanoTime();
            VmExit exit = guest.run(Duration.ofMinutes(5)).orElseThrow();
            long elapsed = System.nanoTime() - start;
            if (exit.reason() != VmExit.Reason.HALTED || guest.loopPort().writes() != iterations) {
                throw new IllegalStateException("the port loop did not complete: " + exit + ", " + guest.loopPort().writes() + " exits");
            }
            return elapsed;
        }
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    private static String exec(String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(10, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new IOException(command[0] + " timed out");
        }
        return out;
    }
}
