package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import dev.panamax.demo.ExitBenchmark;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code panamax bench exits}: the exit round-trip benchmark against a C baseline. */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Benchmarks that compare Panamax with a peer in one run.",
        subcommands = BenchCommand.Exits.class)
final class BenchCommand {

    @Command(name = "exits", mixinStandardHelpOptions = true,
            description = {"Exit round trip: a guest loop of port writes, each a vCPU exit handled by a Java device,",
                "against the same loop driven by a minimal C VMM (compiled with gcc) on the same /dev/kvm.",
                "Rounds alternate between the two; medians are reported, with the ratio Java/C."})
    static final class Exits implements Callable<Integer> {
        @Option(names = "--exits", defaultValue = "200000", description = "exits per round (default: ${DEFAULT-VALUE})")
        long exits;

        @Option(names = "--rounds", defaultValue = "5", description = "rounds per side (default: ${DEFAULT-VALUE})")
        int rounds;

        @Override
        public Integer call() throws Exception {
            if (exits < 1 || rounds < 1) {
                throw new UserError("--exits and --rounds must be positive");
            }
            Path dir = Files.createTempDirectory("panamax-bench");
            try {
                System.out.println(ExitBenchmark.run(exits, rounds, dir));
            } finally {
                try (var files = Files.list(dir)) {
                    for (Path f : files.toList()) {
                        Files.deleteIfExists(f);
                    }
                }
                Files.deleteIfExists(dir);
            }
            return 0;
        }
    }
}
