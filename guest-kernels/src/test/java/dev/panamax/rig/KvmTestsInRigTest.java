package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
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

    /** A second class of the same run: it runs in the same JVM in the rig as {@link KvmSample}. */
    @UsesKvm
    static class SecondKvmSample {
        @Test
        void alsoSeesDevKvm() {
            assertThat(Path.of("/dev/kvm")).exists();
        }
    }

    /** A test that hangs past the time a test is given in the rig. */
    @UsesKvm
    static class HangingKvmSample {
        @Test
        void sleepsPastItsTime() throws InterruptedException {
            Thread.sleep(Duration.ofMinutes(10));
        }
    }

    /** What follows a hung test's class in the same run. */
    @UsesKvm
    static class AfterHangKvmSample {
        @Test
        void runsInAFreshJvm() {
            assertThat(Path.of("/dev/kvm")).exists();
        }

        /** Past half its 5 s, the runner prints this test's threads: to the rig's stdout, not into what the test captures. */
        @Test
        void capturesOnlyItsOwnOutput() throws InterruptedException {
            PrintStream stdout = System.out;
            ByteArrayOutputStream captured = new ByteArrayOutputStream();
            System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
            try {
                Thread.sleep(Duration.ofMillis(3500));
            } finally {
                System.setOut(stdout);
            }
            assertThat(captured.toString(StandardCharsets.UTF_8)).isEmpty();
        }
    }

    /** Runs {@code classes} as one test run, as surefire does, and returns each test's result by its name. */
    private static Map<String, TestExecutionResult> run(Class<?>... classes) {
        Map<String, TestExecutionResult> results = new ConcurrentHashMap<>();
        LauncherFactory.create().execute(LauncherDiscoveryRequestBuilder.request()
                        .selectors(Stream.of(classes).map(DiscoverySelectors::selectClass).toList()).build(),
                new TestExecutionListener() {
                    @Override
                    public void executionFinished(TestIdentifier test, TestExecutionResult result) {
                        if (test.isTest()) results.put(test.getDisplayName(), result);
                    }
                });
        return results;
    }

    @Test
    void eachTestEndsAsItEndedWhereKvmIs() throws IOException {
        Map<String, TestExecutionResult> results = run(KvmSample.class, SecondKvmSample.class);

        assertThat(results).containsOnlyKeys("seesDevKvm()", "failsSayingWhy()", "abortsOnAnAssumption()", "1", "2", "alsoSeesDevKvm()");
        assertThat(results.get("alsoSeesDevKvm()").getStatus()).isEqualTo(TestExecutionResult.Status.SUCCESSFUL);
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
        if (!KvmTestsInRig.hostHasKvm()) { // both classes ran in one JVM in the rig, which wrote one file
            assertThat(InRigTestRunner.read(Path.of("target", "kvm-tests-in-rig", KvmSample.class.getName() + ".results")))
                    .containsKeys("[engine:junit-jupiter]/[class:" + KvmSample.class.getName() + "]",
                            "[engine:junit-jupiter]/[class:" + SecondKvmSample.class.getName() + "]");
        }
    }

    @Test
    void aTestThatHangsInTheRigFailsAndTheClassesAfterItStillRun() {
        assumeFalse(KvmTestsInRig.hostHasKvm(), "only where tests run in the rig: here the sample would sleep its 10 minutes");
        System.setProperty("panamax.rigTests.hungTestSeconds", "5");
        Map<String, TestExecutionResult> results;
        try {
            results = run(HangingKvmSample.class, AfterHangKvmSample.class);
        } finally {
            System.clearProperty("panamax.rigTests.hungTestSeconds");
        }

        assertThat(results.get("sleepsPastItsTime()").getStatus()).isEqualTo(TestExecutionResult.Status.FAILED);
        assertThat(results.get("sleepsPastItsTime()").getThrowable()).get().extracting(Throwable::getMessage).asString()
                .contains("ran longer than 5 s in the rig").contains("sleepsPastItsTime");
        assertThat(results.get("runsInAFreshJvm()").getStatus()).isEqualTo(TestExecutionResult.Status.SUCCESSFUL);
        assertThat(results.get("capturesOnlyItsOwnOutput()").getStatus()).as("%s", results.get("capturesOnlyItsOwnOutput()"))
                .isEqualTo(TestExecutionResult.Status.SUCCESSFUL);
    }
}
