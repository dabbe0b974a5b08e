package dev.panamax.rig;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.InvocationInterceptor;
import org.junit.jupiter.api.extension.ReflectiveInvocationContext;
import org.junit.platform.engine.UniqueId;

/**
 * Runs a {@link UsesKvm} test class inside the nested KVM rig when this host has no
 * {@code /dev/kvm}: before the class's first test the whole class runs in one JVM in the run's
 * {@link SharedRig} ({@link InRigTestRunner}, with this JVM's class path; the rig on one TCG thread,
 * {@link Rig.Options#withOneTcgThread} says why), and then each test here,
 * instead of running, ends as it ended there: passed, failed with the rig's exception, or aborted.
 * Lifecycle methods (which open KVM as often as the tests do) run only in the rig. A test the rig's
 * run did not reach fails with its nearest failed container's exception (a {@code @BeforeAll} that
 * failed there, say).
 */
public final class KvmTestsInRig implements BeforeAllCallback, InvocationInterceptor {
    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(KvmTestsInRig.class);
    private static final String OUTCOMES = "outcomes";
    /**
     * For a whole class (the longest took 1.5 min). A class still running then is killed and fails; a rig
     * that does not even answer the kill is wedged, and its class runs once more in a fresh rig ({@link SharedRig}).
     */
    private static final Duration CLASS_TIMEOUT = Duration.ofMinutes(10);

    /** Whether tests needing /dev/kvm run here; KVM_CREATE_VM on an emulating one works too. */
    static boolean hostHasKvm() {
        return Files.exists(Path.of("/dev/kvm"));
    }

    @Override
    public void beforeAll(ExtensionContext context) throws IOException {
        if (hostHasKvm() || outcomes(context) != null) return; // here, or a @Nested class of a class run in the rig
        Class<?> testClass = context.getRequiredTestClass();
        System.err.println("panamax tests: this host has no /dev/kvm; running " + testClass.getSimpleName() + " in the nested KVM rig");
        Path results = Path.of("target", "kvm-tests-in-rig", testClass.getName() + ".results").toAbsolutePath();
        Files.createDirectories(results.getParent());
        Files.deleteIfExists(results);
        SharedRig rig = SharedRig.of(context, Rig.Options.defaults().withOneTcgThread());
        RunResult run = rig.runJava(InRigTestRunner.class.getName(), List.of(results.toString(), testClass.getName()), CLASS_TIMEOUT, System.out);
        if (!Files.exists(results)) {
            throw new IllegalStateException("the rig's JVM running " + testClass.getName() + (run.timedOut() ? " timed out" : " ended with status "
                    + run.exitStatus()) + " without writing its results; its output ended with:\n" + lastLines(run.output()));
        }
        context.getStore(NAMESPACE).put(OUTCOMES, InRigTestRunner.read(results));
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
