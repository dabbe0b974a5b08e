package dev.panamax.rig;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.NotSerializableException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
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
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

/**
 * Runs one test class with the JUnit Platform in this JVM (the rig's, for {@link KvmTestsInRig})
 * and writes each test's and container's outcome, by unique id, to a file.
 *
 * <p>Usage: {@code InRigTestRunner RESULTS_FILE CLASS}
 */
public final class InRigTestRunner {
    /** After this long a test's threads are printed (once): CI shows where a hung test hangs. */
    private static final Duration SLOW_TEST = Duration.ofMinutes(3);

    private InRigTestRunner() {}

    /** How a test or container ended; {@code failure} is null for a success. */
    public record Outcome(Status status, Throwable failure) implements Serializable {
        public enum Status { SUCCESSFUL, ABORTED, FAILED, SKIPPED }
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 2) throw new IllegalArgumentException("usage: InRigTestRunner RESULTS_FILE CLASS");
        Map<String, Outcome> outcomes = new ConcurrentHashMap<>();
        ScheduledExecutorService watchdog = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().name("rig-test-watchdog").unstarted(r));
        AtomicReference<ScheduledFuture<?>> dump = new AtomicReference<>();
        TestExecutionListener listener = new TestExecutionListener() {
            @Override
            public void executionStarted(TestIdentifier test) {
                if (!test.isTest()) return;
                System.out.println("in the rig: " + test.getDisplayName() + " started");
                dump.set(watchdog.schedule(() -> printThreads(test), SLOW_TEST.toSeconds(), TimeUnit.SECONDS));
            }

            @Override
            public void executionFinished(TestIdentifier test, TestExecutionResult result) {
                if (test.isTest()) {
                    dump.get().cancel(false);
                    System.out.println("in the rig: " + test.getDisplayName() + " " + result.getStatus());
                }
                Outcome.Status status = switch (result.getStatus()) {
                    case SUCCESSFUL -> Outcome.Status.SUCCESSFUL;
                    case ABORTED -> Outcome.Status.ABORTED;
                    case FAILED -> Outcome.Status.FAILED;
                };
                outcomes.put(test.getUniqueId(), new Outcome(status, result.getThrowable().map(InRigTestRunner::portable).orElse(null)));
            }

            @Override
            public void executionSkipped(TestIdentifier test, String reason) {
                outcomes.put(test.getUniqueId(), new Outcome(Outcome.Status.SKIPPED, new AssertionError("skipped in the rig: " + reason)));
            }
        };
        LauncherFactory.create().execute(LauncherDiscoveryRequestBuilder.request()
                .selectors(DiscoverySelectors.selectClass(args[1])).build(), listener);
        Path results = Path.of(args[0]);
        Path partial = results.resolveSibling(results.getFileName() + ".partial");
        try (ObjectOutputStream out = new ObjectOutputStream(Files.newOutputStream(partial))) {
            out.writeObject(new HashMap<>(outcomes));
        }
        Files.move(partial, results, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** A hung test in the rig is seen only through its output: its threads' stacks say where it hangs. */
    private static void printThreads(TestIdentifier test) {
        StringBuilder s = new StringBuilder("in the rig: " + test.getDisplayName() + " has run for " + SLOW_TEST.toMinutes()
                + " minutes; its JVM's threads:\n");
        Thread.getAllStackTraces().forEach((thread, stack) -> {
            s.append('"').append(thread.getName()).append("\" ").append(thread.getState()).append('\n');
            for (StackTraceElement frame : stack) s.append("    at ").append(frame).append('\n');
        });
        System.out.println(s);
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
