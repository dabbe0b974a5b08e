package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import dev.panamax.demo.DemoGuest;
import dev.panamax.demo.DemoProgram;
import dev.panamax.kvm.KvmUnavailableException;
import dev.panamax.vm.VmExit;
import java.io.PrintStream;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code panamax demo}: runs the bare guest programs on /dev/kvm, which works even where KVM only emulates. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Run bare guest programs on /dev/kvm and print what they write to the debug console.",
            "Without a program name, runs the real-mode, long-mode and two-vCPU greetings in turn."})
final class DemoCommand implements Callable<Integer> {
    private static final List<DemoProgram> GREETINGS =
            List.of(DemoProgram.HELLO_REAL_MODE, DemoProgram.HELLO_LONG_MODE, DemoProgram.SMP_HELLO);

    @Parameters(arity = "0..1", paramLabel = "PROGRAM", description = "hello-real, hello-long, smp-hello, port-loop, spin or counter")
    String program;

    @Option(names = "--cpus", paramLabel = "N", description = "vCPUs (default: 2 for smp-hello, else 1)")
    Integer cpus;

    @Option(names = "--count", paramLabel = "N", defaultValue = "1000",
            description = "the loop count port-loop and spin read from RCX (default: ${DEFAULT-VALUE})")
    long count;

    @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "30", description = "stop the guest after this long (default: ${DEFAULT-VALUE})")
    long timeoutSeconds;

    @Override
    public Integer call() {
        List<DemoProgram> programs;
        try {
            programs = program == null ? GREETINGS : List.of(DemoProgram.byName(program));
        } catch (IllegalArgumentException e) {
            throw new UserError("no demo program '" + program + "'; choose one of "
                    + Arrays.stream(DemoProgram.values()).map(DemoProgram::programName).toList());
        }
        int status = 0;
        for (DemoProgram p : programs) {
            status = Math.max(status, run(p));
        }
        return status;
    }

    private int run(DemoProgram p) {
        int vcpus = cpus != null ? cpus : p == DemoProgram.SMP_HELLO ? 2 : 1;
        if (vcpus < 1 || vcpus > 8) {
            throw new UserError("--cpus must be between 1 and 8, not " + vcpus);
        }
        PrintStream err = System.err;
        err.printf("panamax: running %s on %d vCPU%s: %s%n", p.programName(), vcpus, vcpus == 1 ? "" : "s", p.description());
        try (DemoGuest guest = DemoGuest.create(null, p, vcpus, count, System.out)) {
            VmExit exit = guest.run(Duration.ofSeconds(timeoutSeconds)).orElse(null);
            System.out.flush();
            if (exit == null) {
                err.printf("panamax: %s still running after %d s; stopped it%n", p.programName(), timeoutSeconds);
                return 1;
            }
            err.println("panamax: " + p.programName() + " ended: " + exit.reason().name().toLowerCase().replace('_', ' ')
                    + (exit.reason().clean() ? "" : " (" + exit + ")"));
            return exit.reason().clean() ? 0 : 1;
        } catch (KvmUnavailableException e) {
            throw new UserError(e.getMessage());
        }
    }
}
