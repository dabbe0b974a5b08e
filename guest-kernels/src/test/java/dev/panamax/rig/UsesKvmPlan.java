package dev.panamax.rig;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.platform.engine.support.descriptor.ClassSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;

/**
 * Where this host has no {@code /dev/kvm}: when a test run starts, runs all its {@link UsesKvm}
 * classes in one JVM in a rig of their own ({@link KvmTestsInRig#runInRig}), in the background, so
 * that the run's other tests go on on this host meanwhile (the rig on one TCG thread takes one of
 * the host's CPUs). A JVM start in the rig is 15-20 s, and a module's classes there take minutes.
 * Each {@link UsesKvm} class's tests then wait for the batch's outcomes.
 *
 * <p>Registered as a service in this test-jar, so every module's test run has it; a launcher
 * started inside a test (as {@code KvmTestsInRigTest} does) has a plan, and a batch, of its own.
 */
public final class UsesKvmPlan implements TestExecutionListener {
    /** Each {@link UsesKvm} class's name, to the batch of the plan it was in. */
    private static final Map<String, Batch> BATCH_OF = new ConcurrentHashMap<>();

    /** A plan's {@link UsesKvm} classes, in its order, their outcomes in the rig to come, and the rig they run in. */
    private record Batch(List<String> classes, SharedRig rig, CompletableFuture<Map<String, InRigTestRunner.Outcome>> outcomes) {}

    private final Map<TestPlan, Batch> batches = new ConcurrentHashMap<>();

    @Override
    public void testPlanExecutionStarted(TestPlan plan) {
        if (KvmTestsInRig.hostHasKvm()) return;
        List<String> classes = new ArrayList<>();
        for (TestIdentifier root : plan.getRoots()) {
            for (TestIdentifier child : plan.getChildren(root)) {
                if (child.getSource().orElse(null) instanceof ClassSource source && usesKvm(source)) classes.add(source.getClassName());
            }
        }
        if (classes.isEmpty()) return;
        SharedRig rig = new SharedRig(Rig.Options.defaults().withOneTcgThread());
        CompletableFuture<Map<String, InRigTestRunner.Outcome>> outcomes = new CompletableFuture<>();
        Batch batch = new Batch(List.copyOf(classes), rig, outcomes);
        batches.put(plan, batch);
        for (String name : batch.classes()) BATCH_OF.put(name, batch);
        Thread.ofPlatform().daemon().name("kvm-tests-in-rig").start(() -> {
            try {
                outcomes.complete(KvmTestsInRig.runInRig(rig, batch.classes()));
            } catch (Throwable t) {
                outcomes.completeExceptionally(t);
            }
        });
    }

    @Override
    public void testPlanExecutionFinished(TestPlan plan) {
        Batch batch = batches.remove(plan);
        if (batch == null) return;
        batch.rig().close(); // a batch still running (its classes filtered out, say) ends with it
        batch.classes().forEach(name -> BATCH_OF.remove(name, batch));
    }

    private static boolean usesKvm(ClassSource source) {
        try {
            return source.getJavaClass().isAnnotationPresent(UsesKvm.class);
        } catch (RuntimeException e) {
            return false; // a class this loader cannot see is not run in the batch; its own beforeAll runs it alone
        }
    }

    /** The outcomes of the batch {@code className} runs in, waited for; null when no plan started one for it. */
    static Map<String, InRigTestRunner.Outcome> outcomesOf(String className) throws Exception {
        Batch batch = BATCH_OF.get(className);
        if (batch == null) return null;
        try {
            return batch.outcomes().join();
        } catch (CompletionException e) {
            if (e.getCause() instanceof Exception x) throw x;
            if (e.getCause() instanceof Error x) throw x;
            throw e;
        }
    }
}
