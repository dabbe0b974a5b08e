package dev.panamax.api;

import java.time.Duration;
import java.util.Objects;

/**
 * How {@link VirtualMachine#migrate} moves a VM to a destination waiting with {@link
 * VirtualMachine#listenForMigration} (or {@code panamax run --incoming}).
 *
 * @param destination {@code tcp:HOST:PORT} or {@code unix:PATH}
 * @param downtimeTarget the longest stop of the guest the pre-copy aims for (default 300 ms)
 * @param maxRounds the most rounds of dirty pages after the first copy of memory (default 30)
 * @param refuseLongerDowntime at the round limit, give up and let the guest run on here, rather
 *     than stop it for longer than the target (default: stop it for longer, and report it)
 * @param timeout the longest the destination may take to answer one step (default 30 s)
 */
public record MigrationOptions(String destination, Duration downtimeTarget, int maxRounds, boolean refuseLongerDowntime,
        Duration timeout) {
    public MigrationOptions {
        Objects.requireNonNull(destination, "destination");
        Objects.requireNonNull(downtimeTarget, "downtimeTarget");
        Objects.requireNonNull(timeout, "timeout");
    }

    /** To {@code destination}, with the defaults. */
    public static MigrationOptions to(String destination) {
        return new MigrationOptions(destination, Duration.ofMillis(300), 30, false, Duration.ofSeconds(30));
    }

    public MigrationOptions downtimeTarget(Duration target) {
        return new MigrationOptions(destination, target, maxRounds, refuseLongerDowntime, timeout);
    }

    public MigrationOptions maxRounds(int rounds) {
        return new MigrationOptions(destination, downtimeTarget, rounds, refuseLongerDowntime, timeout);
    }

    public MigrationOptions refuseLongerDowntime(boolean refuse) {
        return new MigrationOptions(destination, downtimeTarget, maxRounds, refuse, timeout);
    }

    public MigrationOptions timeout(Duration answerTimeout) {
        return new MigrationOptions(destination, downtimeTarget, maxRounds, refuseLongerDowntime, answerTimeout);
    }
}
