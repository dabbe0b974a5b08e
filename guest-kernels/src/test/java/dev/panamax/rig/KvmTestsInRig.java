package dev.panamax.rig;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.InvocationInterceptor;
import org.junit.jupiter.api.extension.ReflectiveInvocationContext;
import org.junit.platform.engine.UniqueId;

/**
 * Runs {@link UsesKvm} test classes inside the nested KVM rig when this host has no
 * {@code /dev/kvm}. Every {@link UsesKvm} class of the test run runs in one JVM in a rig, in the
 * background from the run's start ({@link UsesKvmPlan}; {@link InRigTestRunner}, with this JVM's
 * class path; the rig on one TCG thread, {@link Rig.Options#withOneTcgThread} says why). A class
 * outside such a run (a plan that did not name it) runs alone in the run's {@link SharedRig}
 * before its first test. Then each test here, instead of running, ends as
 * it ended there: passed, failed with the rig's exception, or aborted. Lifecycle methods (which
 * open KVM as often as the tests do) run only in the rig. A test the rig's run did not reach fails
 * with its nearest failed container's exception (a {@code @BeforeAll} that failed there, say).
 *
 * <p>Every wait is bounded: the rig's JVM ends a test that runs longer than {@link #hungTest} (it
 * hangs) and the classes after it run in a new one; a rig that stops answering (its CPU wedged) is
 * stopped by {@link Rig#run}'s pings, and {@link SharedRig} runs the command once more in a fresh one.
 */
public final class KvmTestsInRig implements BeforeAllCallback, InvocationInterceptor {
    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(KvmTestsInRig.class);
    private static final String OUTCOMES = "outcomes";
    /** A run's whole time in the rig; ample, as the rig's pings end a wedged one far sooner. */
    private static final Duration BATCH_TIMEOUT = Duration.ofMinutes(60);
    /** The longest a test may run in the rig: the slowest seen took 1.5 min; a system property for this class's own test. */
    static Duration hungTest() {
        return Duration.ofSeconds(Long.getLong("panamax.rigTests.hungTestSeconds", 360));
    }

    /** Whether tests needing /dev/kvm run here; KVM_CREATE_VM on an emulating one works too. */
    static boolean hostHasKvm() {
        return Files.exists(Path.of("/dev/kvm"));
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        if (hostHasKvm() || outcomes(context) != null) return; // here, or a @Nested class of a class run in the rig
        String name = context.getRequiredTestClass().getName();
        Map<String, InRigTestRunner.Outcome> outcomes = UsesKvmPlan.outcomesOf(name);
        if (outcomes == null) outcomes = runInRig(runRig(context), List.of(name));
        context.getStore(NAMESPACE).put(OUTCOMES, outcomes);
    }

    /** The test run's rig for classes outside a plan's batch (one TCG thread), stopped when the run ends. */
    private static SharedRig runRig(ExtensionContext context) {
        return context.getRoot().getStore(NAMESPACE).getOrComputeIfAbsent(RunRig.class,
                k -> new RunRig(new SharedRig(Rig.Options.defaults().withOneTcgThread())), RunRig.class).rig();
    }

    private record RunRig(SharedRig rig) implements ExtensionContext.Store.CloseableResource {
        @Override
        public void close() {
            rig.close();
        }
    }

    /**
     * Runs {@code batch} in the rig, in as few JVMs as its hung tests allow, and returns every
     * outcome; a class that got none fails with what the rig said.
     */
    static Map<String, InRigTestRunner.Outcome> runInRig(SharedRig rig, List<String> batch) throws IOException {
        Path results = Path.of("target", "kvm-tests-in-rig", batch.getFirst() + ".results").toAbsolutePath();
        Path log = results.resolveSibling(batch.getFirst() + ".log");
        Files.createDirectories(results.getParent());
        System.err.println("panamax tests: this host has no /dev/kvm; running " + batch.size() + " test classes that need it in the nested KVM rig ("
                + String.join(", ", batch.stream().map(c -> c.substring(c.lastIndexOf('.') + 1)).toList()) + "), its output in " + log);
        long start = System.nanoTime();
        Map<String, InRigTestRunner.Outcome> outcomes = new HashMap<>();
        List<String> remaining = new ArrayList<>(batch);
        while (!remaining.isEmpty()) {
            Files.deleteIfExists(results);
            List<String> args = new ArrayList<>(List.of(results.toString(), String.valueOf(hungTest().toSeconds())));
            args.addAll(remaining);
            String failure;
            try (OutputStream echo = Files.newOutputStream(log, StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
                RunResult run = rig.runJava(InRigTestRunner.class.getName(), args, BATCH_TIMEOUT, echo);
                boolean endedAHungTest = run.exitStatus() == InRigTestRunner.HUNG_STATUS;
                failure = endedAHungTest ? null : (run.timedOut() ? "timed out" : "ended with status " + run.exitStatus())
                        + "; its output ended with:\n" + lastLines(run.output());
            } catch (RigException e) {
                failure = "stopped: " + e.getMessage();
            }
            if (Files.exists(results)) outcomes.putAll(InRigTestRunner.read(results));
            List<String> ran = remaining.stream().filter(c -> outcomes.containsKey(classId(c))).toList();
            remaining.removeAll(ran);
            if (failure == null && !ran.isEmpty()) continue; // it ended a hung test and its class: on with the rest
            if (remaining.isEmpty()) break;
            AssertionError unrun = new AssertionError("the rig's JVM running " + String.join(", ", remaining) + " did not finish them: it "
                    + (failure == null ? "ended a hung test it did not report" : failure));
            for (String c : remaining) outcomes.put(classId(c), new InRigTestRunner.Outcome(InRigTestRunner.Outcome.Status.FAILED, unrun));
            break;
        }
        System.err.println("panamax tests: the rig ran " + batch.size() + " test classes in " + Duration.ofNanos(System.nanoTime() - start).toSeconds() + " s");
        return Map.copyOf(outcomes);
    }

    /** The unique id JUnit Jupiter gives test class {@code className}. */
    private static String classId(String className) {
        return UniqueId.forEngine("junit-jupiter").append("class", className).toString();
    }

    @SuppressWarnings("unchecked")
    private static Map<String, InRigTestRunner.Outcome> outcomes(ExtensionContext context) {
        return (Map<String, InRigTestRunner.Outcome>) context.getStore(NAMESPACE).get(OUTCOMES);
    }

    /** Ends the test as the rig's run of it ended. */
    private static void reportFromRig(ExtensionContext context, Map<String, InRigTestRunner.Outcome> outcomes) throws Throwable {
        UniqueId id = UniqueId.parse(context.getUniqueId());
        InRigTestRunner.Outcome outcome = outcomes.get(id.toString());
        if (outcome != null && outcome.status() == InRigTestRunner.Outcome.Status.SUCCESSFUL) return;
        if (outcome != null) throw outcome.failure();
        for (UniqueId c = id.removeLastSegment(); !c.getSegments().isEmpty(); c = c.removeLastSegment()) {
            InRigTestRunner.Outcome container = outcomes.get(c.toString());
            if (container != null && container.failure() != null) throw container.failure();
        }
        throw new AssertionError("the rig's run of " + context.getRequiredTestClass().getName() + " did not run " + id);
    }

    private static void skipOrProceed(Invocation<Void> invocation, ExtensionContext context) throws Throwable {
        if (outcomes(context) == null) invocation.proceed();
        else invocation.skip();
    }

    @Override
    public void interceptTestMethod(Invocation<Void> invocation, ReflectiveInvocationContext<Method> method, ExtensionContext context) throws Throwable {
        testInvocation(invocation, context);
    }

    @Override
    public void interceptTestTemplateMethod(Invocation<Void> invocation, ReflectiveInvocationContext<Method> method, ExtensionContext context)
            throws Throwable {
        testInvocation(invocation, context);
    }

    private static void testInvocation(Invocation<Void> invocation, ExtensionContext context) throws Throwable {
        Map<String, InRigTestRunner.Outcome> outcomes = outcomes(context);
        if (outcomes == null) {
            invocation.proceed();
            return;
        }
        invocation.skip();
        reportFromRig(context, outcomes);
    }

    /** The class is built here too (JUnit needs an instance to skip its tests on); it must not open KVM as it is. */
    @Override
    public <T> T interceptTestClassConstructor(Invocation<T> invocation, ReflectiveInvocationContext<Constructor<T>> constructor,
            ExtensionContext context) throws Throwable {
        try {
            return invocation.proceed();
        } catch (RuntimeException e) {
            if (outcomes(context) == null) throw e;
            throw new IllegalStateException("a @UsesKvm class is built on this host too, which has no /dev/kvm: open KVM in a"
                    + " @BeforeEach, not in a field initializer or constructor of " + context.getRequiredTestClass().getName(), e);
        }
    }

    @Override
    public <T> T interceptTestFactoryMethod(Invocation<T> invocation, ReflectiveInvocationContext<Method> method, ExtensionContext context)
            throws Throwable {
        if (outcomes(context) != null) {
            throw new UnsupportedOperationException("a @TestFactory in a @UsesKvm class cannot report through the rig yet: "
                    + method.getExecutable().getName());
        }
        return invocation.proceed();
    }

    @Override
    public void interceptBeforeAllMethod(Invocation<Void> invocation, ReflectiveInvocationContext<Method> method, ExtensionContext context)
            throws Throwable {
        skipOrProceed(invocation, context);
    }

    @Override
    public void interceptBeforeEachMethod(Invocation<Void> invocation, ReflectiveInvocationContext<Method> method, ExtensionContext context)
            throws Throwable {
        skipOrProceed(invocation, context);
    }

    @Override
    public void interceptAfterEachMethod(Invocation<Void> invocation, ReflectiveInvocationContext<Method> method, ExtensionContext context)
            throws Throwable {
        skipOrProceed(invocation, context);
    }

    @Override
    public void interceptAfterAllMethod(Invocation<Void> invocation, ReflectiveInvocationContext<Method> method, ExtensionContext context)
            throws Throwable {
        skipOrProceed(invocation, context);
    }

    private static String lastLines(String text) {
        List<String> lines = text.lines().toList();
        return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
    }
}
