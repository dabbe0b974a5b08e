package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import dev.panamax.control.ApiClient;
import dev.panamax.control.Json;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code panamax migrate}: live migration of the VM behind a REST API socket, with its progress. */
@Command(name = "migrate", mixinStandardHelpOptions = true, description = {
    "Move the running VM behind a REST API socket (panamax run --api-sock, panamax serve) to a destination waiting with"
            + " panamax run --incoming ADDR (or PUT /migration/receive), on a host that reaches the same disks at the same paths.",
    "Memory is copied while the guest runs; the guest stops only for the last dirty pages and its state. Prints each round;"
            + " ends with status 0 once the guest runs at the destination. On failure the guest runs on here, and the status is 1.",
    "Ctrl-C or --cancel (from another terminal) stops a migration before its commit."})
final class MigrateCommand implements Callable<Integer> {
    @Option(names = "--api-sock", paramLabel = "PATH", required = true, description = "the VM's API socket")
    Path apiSocket;

    @Option(names = "--to", paramLabel = "tcp:HOST:PORT|unix:PATH", description = "where the destination listens")
    String destination;

    @Option(names = "--downtime-ms", paramLabel = "MS", defaultValue = "300", description = "the longest stop of the guest to aim for (default: ${DEFAULT-VALUE})")
    long downtimeMillis;

    @Option(names = "--max-rounds", paramLabel = "N", defaultValue = "30",
            description = "the most rounds of dirty pages; then the guest stops for whatever is left (default: ${DEFAULT-VALUE})")
    int maxRounds;

    @Option(names = "--refuse-longer-downtime", description = "at the round limit, give up (the guest runs on here) rather than stop it longer")
    boolean refuseLongerDowntime;

    @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "30",
            description = "the longest the destination may take to answer one step (default: ${DEFAULT-VALUE})")
    long timeoutSeconds;

    @Option(names = "--cancel", description = "cancel the migration under way instead")
    boolean cancel;

    /** How often the progress is asked for. */
    private static final long POLL_MILLIS = 200;

    @Override
    public Integer call() throws InterruptedException {
        ApiClient api = new ApiClient(apiSocket);
        if (cancel) {
            SnapshotCommand.send(api, apiSocket, "PUT", "/migration/cancel", null);
            System.err.println("panamax: migration cancelled");
            return 0;
        }
        if (destination == null) {
            throw new UserError("give the destination with --to tcp:HOST:PORT or --to unix:PATH (or --cancel)");
        }
        Map<String, Object> request = new LinkedHashMap<>();
        request.put("destination", destination);
        request.put("downtime_ms", downtimeMillis);
        request.put("max_rounds", maxRounds);
        request.put("refuse_longer_downtime", refuseLongerDowntime);
        request.put("timeout_s", timeoutSeconds);
        Thread cancelOnInterrupt = new Thread(() -> {
            try {
                new ApiClient(apiSocket).send("PUT", "/migration/cancel", null);
            } catch (java.io.IOException ignored) {
                // the VMM is gone: nothing to cancel
            }
        });
        SnapshotCommand.send(api, apiSocket, "PUT", "/migration/send", Json.write(request));
        Runtime.getRuntime().addShutdownHook(cancelOnInterrupt);
        try {
            long round = -1;
            while (true) {
                Map<?, ?> status = (Map<?, ?>) SnapshotCommand.send(api, apiSocket, "GET", "/migration", null).json();
                String phase = String.valueOf(status.get("phase"));
                long now = number(status, "round");
                if (now != round && "copying_memory".equals(phase)) {
                    round = now;
                    System.err.printf("panamax: round %d: %d pages last round, %s/s, guest dirties %d pages/s, a stop now would take %d ms%n",
                            now, number(status, "last_round_pages"), mib(number(status, "bandwidth_bytes_per_second")),
                            number(status, "dirty_pages_per_second"), number(status, "expected_downtime_ms"));
                }
                switch (phase) {
                    case "completed" -> {
                        System.err.printf("panamax: migrated to %s in %d ms (%s sent, %d rounds), the guest stood still %d ms%n",
                                destination, number(status, "total_ms"), mib(number(status, "bytes_sent")), number(status, "round"),
                                number(status, "downtime_ms"));
                        return 0;
                    }
                    case "failed", "cancelled", "commit_unconfirmed" -> {
                        System.err.println("panamax: the migration " + (phase.equals("cancelled") ? "was cancelled" : "failed") + ": "
                                + status.get("error"));
                        return 1;
                    }
                    default -> Thread.sleep(POLL_MILLIS);
                }
            }
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(cancelOnInterrupt);
            } catch (IllegalStateException ignored) {
                // shutting down: the hook cancels
            }
        }
    }

    private static long number(Map<?, ?> status, String key) {
        return status.get(key) instanceof Number n ? n.longValue() : 0;
    }

    private static String mib(long bytes) {
        return String.format("%.1f MiB", bytes / 1048576.0);
    }
}
