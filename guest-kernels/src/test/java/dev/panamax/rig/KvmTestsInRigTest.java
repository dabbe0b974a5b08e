package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
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
 * with one, else in the rig. Where this host has none, one run of the samples (one rig of its own)
 * serves both tests: the samples that end in every way, then a hanging one and what follows it.
 */
class KvmTestsInRigTest {
    /** Set by {@link KvmSample} in the JVM it runs in: a later class sees it only in the same JVM. */
    private static final String SAMPLE_JVM = "panamax.kvmSample.jvm";
    private static Map<String, TestExecutionResult> results;

    /** Needs /dev/kvm in its lifecycle and its tests; ends each test in a different way. */
    @UsesKvm
    static class KvmSample {
        @BeforeAll
        static void needsKvmBeforeAll() {
            assertThat(Path.of("/dev/kvm")).exists();
            System.setProperty(SAMPLE_JVM, "KvmSample's");
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

        @Test
        void runsInKvmSamplesJvm() {
            assertThat(System.getProperty(SAMPLE_JVM)).isEqualTo("KvmSample's");
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
            assertThat(System.getProperty(SAMPLE_JVM)).as("KvmSample's mark, seen only in the JVM that ran it").isNull();
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

    /**
     * Runs the samples once for both tests: where this host has KVM, the two that end in every way
     * (the hanging one would sleep its 10 minutes here); else all four in one rig, a test given 5 s.
     */
    @BeforeAll
    static void runTheSamples() {
        System.setProperty("panamax.rigTests.hungTestSeconds", "5"); // read only where the samples go to the rig
        try {
            results = KvmTestsInRig.hostHasKvm() ? run(KvmSample.class, SecondKvmSample.class)
                    : run(KvmSample.class, SecondKvmSample.class, HangingKvmSample.class, AfterHangKvmSample.class);
        } finally {
            System.clearProperty("panamax.rigTests.hungTestSeconds");
            System.clearProperty(SAMPLE_JVM); // set here where the samples ran in this JVM
        }
    }

    @Test
    void eachTestEndsAsItEndedWhereKvmIs() {
        List<String> tests = new ArrayList<>(List.of("seesDevKvm()", "failsSayingWhy()", "abortsOnAnAssumption()", "1", "2",
                "alsoSeesDevKvm()", "runsInKvmSamplesJvm()"));
        if (!KvmTestsInRig.hostHasKvm()) tests.addAll(List.of("sleepsPastItsTime()", "runsInAFreshJvm()", "capturesOnlyItsOwnOutput()"));
        assertThat(results).containsOnlyKeys(tests);
        assertThat(results.get("alsoSeesDevKvm()").getStatus()).isEqualTo(TestExecutionResult.Status.SUCCESSFUL);
        assertThat(results.get("runsInKvmSamplesJvm()").getStatus()).as("%s", results.get("runsInKvmSamplesJvm()"))
                .isEqualTo(TestExecutionResult.Status.SUCCESSFUL);
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
    }

    @Test
    void aTestThatHangsInTheRigFailsAndTheClassesAfterItStillRun() {
        assumeFalse(KvmTestsInRig.hostHasKvm(), "only where tests run in the rig: here the sample would sleep its 10 minutes");

        assertThat(results.get("sleepsPastItsTime()").getStatus()).isEqualTo(TestExecutionResult.Status.FAILED);
        assertThat(results.get("sleepsPastItsTime()").getThrowable()).get().extracting(Throwable::getMessage).asString()
                .contains("ran longer than 5 s in the rig").contains("sleepsPastItsTime");
        assertThat(results.get("runsInAFreshJvm()").getStatus()).isEqualTo(TestExecutionResult.Status.SUCCESSFUL);
        assertThat(results.get("capturesOnlyItsOwnOutput()").getStatus()).as("%s", results.get("capturesOnlyItsOwnOutput()"))
                .isEqualTo(TestExecutionResult.Status.SUCCESSFUL);
    }
}
