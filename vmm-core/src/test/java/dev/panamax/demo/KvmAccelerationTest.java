package dev.panamax.demo;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class KvmAccelerationTest {

    @Test
    void verdictIsMeasuredOnceAndMatchesTheMeasurement() {
        KvmAcceleration verdict = KvmAcceleration.detect();
        assertThat(KvmAcceleration.detect()).isSameAs(verdict);
        assertThat(verdict.kind()).isNotEqualTo(KvmAcceleration.Kind.UNAVAILABLE); // every build host has /dev/kvm
        assertThat(verdict.hardware()).isEqualTo(verdict.nanosPerIteration() < 200);
        assertThat(verdict.detail()).contains("ns per loop iteration");
    }
}
