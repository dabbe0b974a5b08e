package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.OutputStream;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** The watchdog that stops a wedged rig acts on silence only, not on a command that keeps printing. */
class SilenceWatchdogTest {

    @Test
    void silenceCallsItsActionAndOutputPutsItOff() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        CountDownLatch called = new CountDownLatch(1);
        try (KvmTestsInRig.SilenceWatchdog watchdog = new KvmTestsInRig.SilenceWatchdog(Duration.ofSeconds(2), Duration.ofMillis(20), () -> {
            calls.incrementAndGet();
            called.countDown();
        })) {
            OutputStream echo = watchdog.echo(OutputStream.nullOutputStream());
            for (int i = 0; i < 60; i++) { // 3 s of output every 50 ms: never silent for 2 s
                echo.write('.');
                Thread.sleep(50);
            }
            assertThat(calls).as("calls while the command printed").hasValue(0);

            assertThat(called.await(10, TimeUnit.SECONDS)).as("called once silent").isTrue();
        }
    }
}
