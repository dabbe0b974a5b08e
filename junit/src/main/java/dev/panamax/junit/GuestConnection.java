package dev.panamax.junit;

import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RigStoppedException;
import dev.panamax.rig.RunResult;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The test JVM's side of a guest: its {@link GuestServer} runs where real KVM is (started with
 * {@link RealKvm#runJava}, on a thread of its own for as long as the guest lives), takes requests on
 * its stdin ({@link RequestPipe}) and answers on its stdout ({@link ServerOutput}).
 */
final class GuestConnection implements Guest, AutoCloseable {
    /** Console and server log lines kept (the last ones). */
    static final int CONSOLE_LINES_KEPT = 2000;
    static final int LOG_LINES_KEPT = 200;
    /** Beyond a command's own timeout, how long an answer may take before the server is taken for wedged. */
    private static final Duration ANSWER_GRACE = Duration.ofMinutes(2);
    /** How long a stopping server may take to end. */
    private static final Duration STOP_GRACE = Duration.ofSeconds(60);
    /** The server's limit where it runs: it ends when its stdin does; this only guards a wedged one. */
    private static final Duration SERVER_LIMIT = Duration.ofDays(1);

    private final String where;
    private final Duration defaultTimeout;
    private final RequestPipe requests = new RequestPipe();
    private final Deque<String> console = new ArrayDeque<>();
    private final Deque<String> log = new ArrayDeque<>();
    private final CompletableFuture<Void> ready = new CompletableFuture<>();
    private final Map<Integer, Pending> pending = new ConcurrentHashMap<>();
    private final AtomicInteger ids = new AtomicInteger();
    private final AtomicReference<String> endedBecause = new AtomicReference<>(); // why the guest is gone; null while it serves
    private volatile boolean changed; // a command ran since the boot or the last reset
    private volatile boolean heard; // the server has said something
    private volatile boolean placeStopped; // the server ended because its place (the rig) stopped under it
    private Thread runner;

    /** A command under way: what it wrote so far, and its end. */
    private static final class Pending {
        final ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        final ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        final CompletableFuture<GuestWire.Done> done = new CompletableFuture<>();
    }

    private GuestConnection(String where, Duration defaultTimeout) {
        this.where = where;
        this.defaultTimeout = defaultTimeout;
    }

    /**
     * Starts {@code serverClass} with {@code args} at {@code place} and waits until its guest is ready.
     *
     * @throws GuestException when the guest did not become ready within {@code bootTimeout}, with the console's and the server's last lines
     */
    static GuestConnection start(RealKvm place, String where, String serverClass, List<String> args, Duration defaultTimeout,
            Duration bootTimeout) {
        return start(place, where, serverClass, args, defaultTimeout, bootTimeout, bootTimeout);
    }

    /**
     * A server that has said nothing at all after {@code silentLimit} (not even a line of its guest's console) is
     * taken for stuck where it runs, a wedged rig, rather than slow.
     *
     * @throws StuckPlaceException when the server said nothing within {@code silentLimit}, or its place stopped under it
     * @throws GuestException when the guest did not become ready within {@code bootTimeout}, with the console's and the server's last lines
     */
    static GuestConnection start(RealKvm place, String where, String serverClass, List<String> args, Duration defaultTimeout,
            Duration bootTimeout, Duration silentLimit) {
        GuestConnection guest = new GuestConnection(where, defaultTimeout);
        guest.runner = Thread.ofPlatform().daemon().name("guest-server").start(() -> {
            String end;
            try (ServerOutput output = new ServerOutput(guest::receive)) {
                RunResult r = place.runJava(serverClass, args, SERVER_LIMIT, output, guest.requests);
                end = "the guest server ended with status " + r.exitStatus() + (r.timedOut() ? " (killed after " + SERVER_LIMIT + ")" : "");
            } catch (RuntimeException e) {
                guest.placeStopped = e instanceof RigStoppedException;
                end = "the guest server failed: " + e.getMessage();
            }
            guest.gone(end);
        });
        long begin = System.nanoTime();
        try {
            while (true) {
                try {
                    guest.ready.get(1, TimeUnit.SECONDS);
                    return guest;
                } catch (TimeoutException e) {
                    long waited = System.nanoTime() - begin;
                    if (!guest.heard && waited > silentLimit.toNanos()) {
                        guest.close();
                        throw new StuckPlaceException("the guest server in " + where + " said nothing within " + silentLimit.toSeconds() + " s");
                    }
                    if (waited > bootTimeout.toNanos()) {
                        guest.close();
                        throw new GuestException("the guest was not ready within " + bootTimeout.toSeconds() + " s" + guest.diagnosis());
                    }
                }
            }
        } catch (ExecutionException e) {
            guest.close();
            if (guest.placeStopped) throw new StuckPlaceException("the guest did not boot: " + e.getCause().getMessage());
            throw new GuestException("the guest did not boot: " + e.getCause().getMessage() + guest.diagnosis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            guest.close();
            throw new GuestException("interrupted while the guest booted");
        }
    }

    /**
     * Why a booting guest server was given up on: where it runs is stuck (it said nothing at all) or
     * stopped under it (a wedged rig), a failure of the test bed rather than of the guest.
     */
    static final class StuckPlaceException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        StuckPlaceException(String message) {
            super(message);
        }
    }

    private void receive(GuestWire.ServerMessage message) {
        heard = true;
        switch (message) {
            case GuestWire.Ready r -> ready.complete(null);
            case GuestWire.Console c -> keep(console, c.line(), CONSOLE_LINES_KEPT);
            case GuestWire.Log l -> keep(log, l.line(), LOG_LINES_KEPT);
            case GuestWire.Output o -> {
                Pending p = pending.get(o.id());
                if (p != null) (o.stream() == 1 ? p.stdout : p.stderr).writeBytes(o.bytes());
            }
            case GuestWire.Done d -> {
                Pending p = pending.remove(d.id());
                if (p != null) p.done.complete(d);
            }
            case GuestWire.Ended e -> {
                gone(e.reason());
                requests.end(); // the server ends when its stdin does
            }
        }
    }

    private static void keep(Deque<String> lines, String line, int max) {
        synchronized (lines) {
            if (lines.size() == max) lines.removeFirst();
            lines.addLast(line);
        }
    }

    /** The guest is gone: whoever waits learns why. */
    private void gone(String why) {
        // (Not under this object's lock: exec holds it while it waits for what this delivers.)
        endedBecause.compareAndSet(null, why);
        GuestException e = new GuestException(endedBecause.get());
        ready.completeExceptionally(e);
        pending.values().forEach(p -> p.done.completeExceptionally(e));
    }

    @Override
    public ExecResult exec(String command, String... args) {
        List<String> argv = new java.util.ArrayList<>(List.of(command));
        argv.addAll(List.of(args));
        return exec(defaultTimeout, argv);
    }

    /** The timeout of a command run without one. */
    Duration defaultTimeout() {
        return defaultTimeout;
    }

    /** One command at a time: the server runs them in turn, and each call's wait is for its own command. */
    @Override
    public synchronized ExecResult exec(Duration timeout, List<String> argv) {
        GuestWire.ExecRequest request = new GuestWire.ExecRequest(ids.incrementAndGet(), timeout.toMillis(), argv);
        changed = true;
        Pending p = new Pending();
        GuestWire.Done done = request(request.id(), GuestWire.encode(request), p, timeout, "run " + argv.getFirst());
        if (done.status() < 0 && !done.timedOut()) {
            throw new GuestException("the guest could not run " + argv.getFirst() + ": " + done.failure() + diagnosis());
        }
        return new ExecResult(done.timedOut() ? ExecResult.TIMED_OUT : done.status(), p.stdout.toString(StandardCharsets.UTF_8),
                p.stderr.toString(StandardCharsets.UTF_8), Duration.ofNanos(done.nanos()), done.timedOut());
    }

    /**
     * Brings the guest back to the snapshot its server took after the boot, and waits until its agent is
     * back; returns how long that took the server.
     *
     * @throws GuestException when the guest has no snapshot, or could not be restored (it is gone then)
     */
    synchronized Duration reset() {
        GuestWire.ResetRequest request = new GuestWire.ResetRequest(ids.incrementAndGet(), defaultTimeout.toMillis());
        GuestWire.Done done = request(request.id(), GuestWire.encode(request), new Pending(), defaultTimeout, "be reset");
        if (done.status() != 0) throw new GuestException("the guest could not be reset to its snapshot: " + done.failure() + diagnosis());
        changed = false;
        return Duration.ofNanos(done.nanos());
    }

    /** Whether a command ran in the guest since it booted or was last {@linkplain #reset reset}. */
    boolean changedSinceReset() {
        return changed;
    }

    /** Sends request {@code line} and waits for its answer, {@code timeout} and a grace; {@code what} says what the guest was to do. */
    private GuestWire.Done request(int id, String line, Pending p, Duration timeout, String what) {
        pending.put(id, p);
        if (endedBecause.get() != null || !requests.send(line)) {
            pending.remove(id);
            throw new GuestException("the guest cannot " + what + ": " + endedBecause.get() + diagnosis());
        }
        try {
            return p.done.get(timeout.plus(ANSWER_GRACE).toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw new GuestException("the guest cannot " + what + ": " + e.getCause().getMessage() + diagnosis());
        } catch (TimeoutException e) {
            pending.remove(id);
            throw new GuestException("no answer from the guest server within " + timeout.toSeconds() + " s and "
                    + ANSWER_GRACE.toSeconds() + " s more when it was to " + what + diagnosis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new GuestException("interrupted while the guest was to " + what);
        }
    }

    @Override
    public String console() {
        return lastLines(console, CONSOLE_LINES_KEPT);
    }

    /** The console's last {@code n} lines. */
    String consoleTail(int n) {
        return lastLines(console, n);
    }

    /** The server's own last {@code n} lines (its log and anything else it printed). */
    String serverLogTail(int n) {
        return lastLines(log, n);
    }

    @Override
    public String kernelLog() {
        ExecResult r = exec(defaultTimeout, List.of("dmesg"));
        if (r.exitStatus() != 0) throw new GuestException("dmesg in the guest ended with status " + r.exitStatus() + ": " + r.stderr());
        return r.stdout();
    }

    @Override
    public String where() {
        return where;
    }

    /** Whether the guest still serves commands. */
    boolean alive() {
        return endedBecause.get() == null;
    }

    /**
     * Whether the guest is gone because the place its server ran in stopped under it (the rig wedged or
     * died): a failure of the test bed, not of the guest.
     */
    boolean placeStopped() {
        return placeStopped;
    }

    /** Why the guest is gone; null while it serves. */
    String endReason() {
        return endedBecause.get();
    }

    private static String lastLines(Deque<String> lines, int n) {
        synchronized (lines) {
            List<String> all = List.copyOf(lines);
            return String.join("\n", all.subList(Math.max(0, all.size() - n), all.size()));
        }
    }

    /** The console's and the server's last lines, for a failure's message. */
    String diagnosis() {
        return "\n-- the guest's console ended with:\n" + consoleTail(40) + "\n-- the guest server (" + where + ") said:\n" + serverLogTail(40);
    }

    /** Stops the guest: the server ends when its stdin does, killing the VM. */
    @Override
    public void close() {
        requests.send(GuestWire.QUIT);
        requests.end();
        try {
            runner.join(STOP_GRACE);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        gone("the guest was stopped");
    }
}
