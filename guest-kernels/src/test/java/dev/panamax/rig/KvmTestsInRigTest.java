package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.discovery.DiscoverySelectors;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

/**
 * A {@link UsesKvm} class's tests end here as they ended where /dev/kvm is: in this JVM on a host
 * with one, else in the rig (where this host has none, this test starts a rig of its own).
 */
class KvmTestsInRigTest {

    /** Needs /dev/kvm in its lifecycle and its tests; ends each test in a different way. */
    @UsesKvm
    static class KvmSample {
        @BeforeAll
        static void needsKvmBeforeAll() {
            assertThat(Path.of("/dev/kvm")).exists();
        }

        @Test
        void seesDevKvm() {
            assertThat(Path.of("/dev/kvm")).exists();
        }

        @Test
        void failsSayingWhy() {
            fail("failed on purpose where /dev/kvm is");
        }

        @Test
        void abortsOnAnAssumption() {
            assumeTrue(false, "aborted on purpose");
        }

        @ParameterizedTest(name = "{0}")
        @ValueSource(ints = {1, 2})
        void eachInvocationEndsAsItEndedThere(int n) {
            assertThat(n).as("invocation").isEqualTo(1);
        }
    }

    @Test
    void eachTestEndsAsItEndedWhereKvmIs() {
        Map<String, TestExecutionResult> results = new ConcurrentHashMap<>();
        LauncherFactory.create().execute(LauncherDiscoveryRequestBuilder.request().selectors(DiscoverySelectors.selectClass(KvmSample.class)).build(),
                new TestExecutionListener() {
                    @Override
                    public void executionFinished(TestIdentifier test, TestExecutionResult result) {
                        if (test.isTest()) results.put(test.getDisplayName(), result);
                    }
                });

        assertThat(results).containsOnlyKeys("seesDevKvm()", "failsSayingWhy()", "abortsOnAnAssumption()", "1", "2");
        assertThat(results.get("seesDevKvm()").getStatus()).isEqualTo(TestExecutionResult.Status.SUCCESSFUL);
        assertThat(results.get("1").getStatus()).isEqualTo(TestExecutionResult.Status.SUCCESSFUL);
        assertThat(results.get("failsSayingWhy()").getStatus()).isEqualTo(TestExecutionResult.Status.FAILED);
        assertThat(results.get("failsSayingWhy()").getThrowable()).get().extracting(Throwable::getMessage)
                .isEqualTo("failed on purpose where /dev/kvm is");
        assertThat(results.get("abortsOnAnAssumption()").getStatus()).isEqualTo(TestExecutionResult.Status.ABORTED);
        assertThat(results.get("abortsOnAnAssumption()").getThrowable()).get().extracting(Throwable::getMessage)
                .asString().contains("aborted on purpose");
        assertThat(results.get("2").getStatus()).isEqualTo(TestExecutionResult.Status.FAILED);
        assertThat(results.get("2").getThrowable()).get().extracting(Throwable::getMessage).asString().contains("invocation");
        if (!KvmTestsInRig.hostHasKvm()) {
            assertThat(Path.of("target", "kvm-tests-in-rig", KvmSample.class.getName() + ".results")).exists();
        }
    }
}
