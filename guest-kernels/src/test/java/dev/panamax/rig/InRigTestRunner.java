package dev.panamax.rig;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.NotSerializableException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.time.Duration;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.discovery.DiscoverySelectors;
import org.junit.platform.engine.support.descriptor.ClassSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

/**
 * Runs test classes with the JUnit Platform in this JVM (the rig's, for {@link KvmTestsInRig})
 * and writes each test's and container's outcome, by unique id, to a file: after each class, so that
 * a run ended early still reports the classes it finished.
 *
 * <p>A test still running after the time it is given is taken for hung (in KVM_RUN, say, where no
 * interrupt reaches it): it and its class fail, the results so far are written, and this JVM ends
 * with status {@value #HUNG_STATUS}, so that the caller can go on with the classes not yet run.
 *
 * <p>Usage: {@code InRigTestRunner RESULTS_FILE HUNG_AFTER_SECONDS CLASS...}
 */
public final class InRigTestRunner {
    /** After this long (or half the time a test is given, if less) its threads are printed: CI shows where a slow test is. */
    private static final Duration SLOW_TEST = Duration.ofMinutes(3);
    /** This JVM's status when it ended a hung test. */
    static final int HUNG_STATUS = 3;
    /** How often this JVM says it is alive while a test runs: the caller takes a silent rig for wedged. */
    static final Duration HEARTBEAT = Duration.ofSeconds(30);

    /**
     * Where this runner reports: the stdout it started with. Tests swap {@code System.out} to capture a
     * command's output, and a heartbeat printed meanwhile must not land in what they capture.
     */
    private static final PrintStream REPORT = System.out;

    private InRigTestRunner() {}

    /** How a test or container ended; {@code failure} is null for a success. */
    public record Outcome(Status status, Throwable failure) implements Serializable {
        public enum Status { SUCCESSFUL, ABORTED, FAILED, SKIPPED }
    }

    public static void main(String[] args) throws IOException {
        if (args.length < 3) throw new IllegalArgumentException("usage: InRigTestRunner RESULTS_FILE HUNG_AFTER_SECONDS CLASS...");
        Path results = Path.of(args[0]);
        Duration hungAfter = Duration.ofSeconds(Long.parseLong(args[1]));
        Duration slowAfter = hungAfter.dividedBy(2).compareTo(SLOW_TEST) < 0 ? hungAfter.dividedBy(2) : SLOW_TEST;
        List<String> classes = List.of(args).subList(2, args.length);
        Map<String, Outcome> outcomes = new ConcurrentHashMap<>();
        ScheduledExecutorService watchdog = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().name("rig-test-watchdog").unstarted(r));
        AtomicReference<List<ScheduledFuture<?>>> alarms = new AtomicReference<>(List.of());
        long started = System.nanoTime();
        watchdog.scheduleAtFixedRate(() -> REPORT.println("in the rig: running for "
                + Duration.ofNanos(System.nanoTime() - started).toSeconds() + " s"), HEARTBEAT.toSeconds(), HEARTBEAT.toSeconds(), TimeUnit.SECONDS);
        TestExecutionListener listener = new TestExecutionListener() {
            private volatile TestPlan plan;

            @Override
            public void testPlanExecutionStarted(TestPlan testPlan) {
                plan = testPlan;
            }

            /** When each running test started, for the time its line reports. */
            private final Map<String, Long> startedAt = new ConcurrentHashMap<>();

            @Override
            public void executionStarted(TestIdentifier test) {
                if (!test.isTest()) return;
                startedAt.put(test.getUniqueId(), System.nanoTime());
                REPORT.println("in the rig: " + test.getDisplayName() + " started");
                alarms.set(List.of(
                        watchdog.schedule(() -> REPORT.println(threads(test, slowAfter)), slowAfter.toMillis(), TimeUnit.MILLISECONDS),
                        watchdog.schedule(() -> endHungTest(test, hungAfter, plan, outcomes, results), hungAfter.toMillis(), TimeUnit.MILLISECONDS)));
            }

            @Override
            public void executionFinished(TestIdentifier test, TestExecutionResult result) {
                if (test.isTest()) {
                    alarms.get().forEach(a -> a.cancel(false));
                    Long start = startedAt.remove(test.getUniqueId());
                    REPORT.println("in the rig: " + test.getDisplayName() + " " + result.getStatus()
                            + (start == null ? "" : " in " + Duration.ofNanos(System.nanoTime() - start).toMillis() / 1000.0 + " s")
                            + leftBehind());
                }
                Outcome.Status status = switch (result.getStatus()) {
                    case SUCCESSFUL -> Outcome.Status.SUCCESSFUL;
                    case ABORTED -> Outcome.Status.ABORTED;
                    case FAILED -> Outcome.Status.FAILED;
                };
                outcomes.put(test.getUniqueId(), new Outcome(status, result.getThrowable().map(InRigTestRunner::portable).orElse(null)));
                if (test.getSource().orElse(null) instanceof ClassSource) write(outcomes, results);
            }

            @Override
            public void executionSkipped(TestIdentifier test, String reason) {
                outcomes.put(test.getUniqueId(), new Outcome(Outcome.Status.SKIPPED, new AssertionError("skipped in the rig: " + reason)));
            }
        };
        LauncherFactory.create().execute(LauncherDiscoveryRequestBuilder.request()
                .selectors(classes.stream().map(DiscoverySelectors::selectClass).toList()).build(), listener);
        write(outcomes, results);
        System.exit(0); // a thread a test left behind must not keep the rig's command running
    }

    /** Fails {@code test} and its class for having hung, writes what has ended, and ends this JVM. */
    private static void endHungTest(TestIdentifier test, Duration hungAfter, TestPlan plan, Map<String, Outcome> outcomes, Path results) {
        String threads = threads(test, hungAfter);
        REPORT.println(threads);
        AssertionError hung = new AssertionError(test.getDisplayName() + " ran longer than " + hungAfter.toSeconds()
                + " s in the rig and was ended with its JVM; " + threads);
        outcomes.put(test.getUniqueId(), new Outcome(Outcome.Status.FAILED, hung));
        for (TestIdentifier c = test; c != null; c = plan.getParent(c).orElse(null)) {
            if (c.getSource().orElse(null) instanceof ClassSource) outcomes.putIfAbsent(c.getUniqueId(), new Outcome(Outcome.Status.FAILED, hung));
        }
        write(outcomes, results);
        Runtime.getRuntime().halt(HUNG_STATUS);
    }

    /** Replaces {@code results} with {@code outcomes} at once: a reader never sees half a file. */
    private static synchronized void write(Map<String, Outcome> outcomes, Path results) {
        Path partial = results.resolveSibling(results.getFileName() + ".partial");
        try (ObjectOutputStream out = new ObjectOutputStream(Files.newOutputStream(partial))) {
            out.writeObject(new HashMap<>(outcomes));
        } catch (IOException e) {
            throw new UncheckedIOException("could not write the rig's test results to " + partial, e);
        }
        try {
            Files.move(partial, results, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("could not write the rig's test results to " + results, e);
        }
    }

    /**
     * What this JVM runs beside the tests, when there is more than its own threads: the threads and processes a
     * test left running (a VM's vCPU spinning on, a server never stopped) slow every test after it on the rig's CPU.
     */
    private static String leftBehind() {
        List<String> processes = ProcessHandle.current().descendants()
                .map(p -> p.info().command().map(c -> c.substring(c.lastIndexOf('/') + 1)).orElse("?")).toList();
        // A VM's vCPU threads are daemons, so named here; JUnit's timeout watcher and Netty's global executor belong
        // to the run and end by themselves.
        List<String> threads = Thread.getAllStackTraces().keySet().stream().filter(t -> !t.isDaemon() || t.getName().startsWith("vcpu"))
                .map(Thread::getName).filter(n -> !n.equals("main") && !n.startsWith("junit-") && !n.startsWith("globalEventExecutor"))
                .sorted().toList();
        if (processes.isEmpty() && threads.isEmpty()) return "";
        return " (left running: " + (processes.isEmpty() ? "" : processes.size() + " processes " + processes + " ")
                + (threads.isEmpty() ? "" : "threads " + threads) + ")";
    }

    /** A hung test in the rig is seen only through its output: its threads' stacks say where it hangs. */
    private static String threads(TestIdentifier test, Duration after) {
        StringBuilder s = new StringBuilder("in the rig: " + test.getDisplayName() + " has run for " + after.toSeconds()
                + " s; its JVM's threads:\n");
        Thread.getAllStackTraces().forEach((thread, stack) -> {
            s.append('"').append(thread.getName()).append("\" ").append(thread.getState()).append('\n');
            for (StackTraceElement frame : stack) s.append("    at ").append(frame).append('\n');
        });
        return s.toString();
    }

    /** Reads what {@link #main} wrote. */
    @SuppressWarnings("unchecked")
    public static Map<String, Outcome> read(Path results) throws IOException {
        try (ObjectInputStream in = new ObjectInputStream(Files.newInputStream(results))) {
            return (Map<String, Outcome>) in.readObject();
        } catch (ClassNotFoundException e) {
            throw new IOException("the rig's test results name a class this JVM lacks: " + e.getMessage(), e);
        }
    }

    /**
     * {@code t} itself when it serializes, else an AssertionError with its text and stack trace (and
     * its causes so), which does: an exception holding something unserializable still tells the host why.
     */
    static Throwable portable(Throwable t) {
        try (ObjectOutputStream out = new ObjectOutputStream(new ByteArrayOutputStream())) {
            out.writeObject(t);
            return t;
        } catch (NotSerializableException e) {
            AssertionError copy = new AssertionError(t.toString(), t.getCause() == null ? null : portable(t.getCause()));
            copy.setStackTrace(t.getStackTrace());
            return copy;
        } catch (IOException e) {
            throw new IllegalStateException("could not serialize " + t, e);
        }
    }
}
