package dev.panamax.demo;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.rig.UsesKvm;
import org.junit.jupiter.api.Test;

@UsesKvm
class KvmAccelerationTest {

    @Test
    void verdictIsMeasuredOnceAndMatchesTheMeasurement() {
        KvmAcceleration verdict = KvmAcceleration.detect();
        assertThat(KvmAcceleration.detect()).isSameAs(verdict);
        assertThat(verdict.kind()).isNotEqualTo(KvmAcceleration.Kind.UNAVAILABLE); // @UsesKvm: it runs where /dev/kvm is
        assertThat(verdict.hardware()).isEqualTo(verdict.nanosPerIteration() < 200);
        assertThat(verdict.detail()).contains("ns per loop iteration");
    }
}
