package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.panamax.demo.KvmAcceleration;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RunResult;
import dev.panamax.rig.SharedRig;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The run's rig is kept while any class or test uses it and stopped once none has for the idle time. */
@Timeout(300)
class IdleRigTest {
    private static final Duration IDLE = Duration.ofSeconds(3);

    @Test
    void theRigOutlivesOneClassWhileAnotherUsesItAndStopsOnceIdle() throws InterruptedException {
        assumeFalse(KvmAcceleration.detect().hardware(), "guests run on this host's KVM, not in a rig");
        PanamaxExtension.Places places = new PanamaxExtension.Places(IDLE);
        try {
            RealKvm first = places.placeFor(List.of());
            assertThat(first).isInstanceOf(Rig.class);
            RealKvm second = places.placeFor(List.of());
            assertThat(second).as("one rig for both classes").isSameAs(first);

            places.release();
            Thread.sleep(IDLE.multipliedBy(2));
            assertThat(places.runningRig()).as("kept while the second class runs").containsSame((Rig) first);

            places.release();
            Thread.sleep(IDLE.multipliedBy(3));
            assertThat(places.runningRig()).as("stopped once idle").isEmpty();
            assertThat(((Rig) first).isStopped()).isTrue();
        } finally {
            places.close();
        }
    }

    @Test
    void aTestsCommandsRunInTheGuestsRigAndKeepItUntilTheTestEnds() throws InterruptedException {
        assumeFalse(KvmAcceleration.detect().hardware(), "commands run on this host's KVM, not in a rig");
        PanamaxExtension.Places places = new PanamaxExtension.Places(IDLE);
        try {
            RealKvm commands = places.commandsPlace();
            assertThat(commands).as("a rig that runs a command again in a fresh rig when it stopped").isInstanceOf(SharedRig.class);
            RunResult r = commands.run(List.of("sh", "-c", "echo in-the-rig; exit 7"), Duration.ofSeconds(60));
            assertThat(r.exitStatus()).as(r.output()).isEqualTo(7);
            assertThat(r.output()).contains("in-the-rig");
            Rig rig = places.runningRig().orElseThrow();
            RealKvm guests = places.placeFor(List.of());
            assertThat(guests).as("the guests' rig is the commands' rig").isSameAs(rig);
            assertThat(places.rig()).as("and a test's Rig too").isSameAs(rig);

            places.release(); // the class's guest
            places.release(); // the Rig parameter's test
            Thread.sleep(IDLE.multipliedBy(2));
            assertThat(places.runningRig()).as("kept while the commands' test runs").containsSame(rig);

            places.release();
            Thread.sleep(IDLE.multipliedBy(3));
            assertThat(places.runningRig()).as("stopped once idle").isEmpty();
            assertThat(commands.run(List.of("true"), Duration.ofSeconds(60)).exitStatus()).as("started again by the next command").isZero();
        } finally {
            places.close();
        }
    }
}
