package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.panamax.demo.KvmAcceleration;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The classes' rig is kept while any class uses it and stopped once none has for the idle time. */
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
}
