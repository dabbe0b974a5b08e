package dev.panamax.junit;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * A test class's guest as its tests hold it: the connection to the guest's server, which the place it
 * runs in can take away. QEMU's software CPU under the rig has been seen to wedge the whole rig while a
 * snapshot was restored (a CI run's eighth reset of {@code ResetRigTest}); the rig is stopped then, and
 * the server with it. With {@link Reset#SNAPSHOT} the next test would only have found the snapshot of
 * the booted guest, so the guest boots once more in a fresh place and that test finds the same; a test's
 * first command, which found the guest so too, runs once more there. With {@link Reset#NONE} what the
 * tests before left in the guest is gone, so its tests fail instead.
 */
final class ClassGuest implements Guest {
    /** How often a class's guest boots again after its place stopped: a place that keeps stopping is broken. */
    static final int BOOTS_AGAIN = 2;

    private final Reset reset;
    private final Supplier<GuestConnection> bootInFreshPlace;
    private volatile GuestConnection connection;
    private int bootedAgain;

    /** {@code booted} serves the class's tests until its place stops; then {@code bootInFreshPlace} gives the next. */
    ClassGuest(GuestConnection booted, Reset reset, Supplier<GuestConnection> bootInFreshPlace) {
        this.connection = booted;
        this.reset = reset;
        this.bootInFreshPlace = bootInFreshPlace;
    }

    /** The connection that serves now. */
    GuestConnection connection() {
        return connection;
    }

    /**
     * Before a test: with {@link Reset#SNAPSHOT}, brings the guest back to its snapshot when a command ran since,
     * or boots it once more in a fresh place when its place stopped (before or during the reset).
     *
     * @throws GuestException when the reset failed in a place that still runs, or the place stopped too often
     */
    synchronized void prepareForTest() {
        if (reset != Reset.SNAPSHOT) return;
        GuestConnection c = connection;
        if (!c.alive()) {
            if (c.placeStopped()) bootAgain(c.endReason());
            return; // (a guest that ended by itself: each test says why)
        }
        if (!c.changedSinceReset()) return;
        try {
            c.reset();
        } catch (GuestException e) {
            if (!c.placeStopped()) throw e;
            bootAgain(c.endReason());
        }
    }

    private void bootAgain(String why) {
        String reason = why.lines().findFirst().orElse("");
        if (bootedAgain == BOOTS_AGAIN) {
            throw new GuestException("the class's guest is gone, and it has booted again " + BOOTS_AGAIN + " times already: " + reason);
        }
        bootedAgain++;
        System.err.println("panamax-junit: " + reason + "; the class's guest boots once more in a fresh place (its tests start"
                + " from a booted guest either way)");
        connection.close();
        connection = bootInFreshPlace.get();
    }

    @Override
    public ExecResult exec(String command, String... args) {
        List<String> argv = new ArrayList<>(List.of(command));
        argv.addAll(List.of(args));
        return exec(connection.defaultTimeout(), argv);
    }

    /**
     * Runs the command; with {@link Reset#SNAPSHOT}, a test's first command whose place stopped under it runs once
     * more in a guest booted in a fresh place: it found the guest as the snapshot had it, and finds it so again.
     * A later command of the test fails instead (what the commands before it did is gone).
     */
    @Override
    public ExecResult exec(Duration timeout, List<String> argv) {
        GuestConnection c = connection;
        boolean firstOfTest = reset == Reset.SNAPSHOT && c.alive() && !c.changedSinceReset();
        try {
            return c.exec(timeout, argv);
        } catch (GuestException e) {
            if (!firstOfTest || !c.placeStopped()) throw e;
            synchronized (this) {
                bootAgain(c.endReason());
            }
            return connection.exec(timeout, argv);
        }
    }

    @Override
    public String console() {
        return connection.console();
    }

    @Override
    public String kernelLog() {
        return connection.kernelLog();
    }

    @Override
    public String where() {
        return connection.where();
    }

    /** Stops the guest. */
    void close() {
        connection.close();
    }
}
