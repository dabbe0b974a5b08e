package dev.panamax.demo;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.rig.UsesKvm;
import dev.panamax.vm.VmExit;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The demo programs run on this host's /dev/kvm (which may only emulate: they use integer instructions only). */
@UsesKvm
class DemoGuestTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);

    @Test
    void realModeProgramPrintsRoundTripsThroughMmioAndHalts() {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.HELLO_REAL_MODE, 1, 0, null)) {
            VmExit exit = guest.run(TIMEOUT).orElseThrow();

            assertThat(exit.reason()).isEqualTo(VmExit.Reason.HALTED);
            assertThat(guest.console().text()).isEqualTo("Hello from real mode\nMMIO round trip ok\n");
            assertThat(guest.scratch().lastWritten()).isEqualTo(0x1234);
        }
    }

    @Test
    void longModeProgramRunsWithPanamaxPageTables() {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.HELLO_LONG_MODE, 1, 0, null)) {
            VmExit exit = guest.run(TIMEOUT).orElseThrow();

            assertThat(exit.reason()).isEqualTo(VmExit.Reason.HALTED);
            assertThat(guest.console().text()).isEqualTo("Hello from 64-bit long mode\nMMIO round trip ok\n");
            assertThat(guest.scratch().lastWritten()).isEqualTo(0x1122334455667788L);
            assertThat(exit.registers().rip).as("stopped just past the HLT, in the program")
                    .isBetween(DemoGuest.LOAD_ADDRESS, DemoGuest.LOAD_ADDRESS + 0x100);
        }
    }

    @Test
    void twoVcpusBothRunGuestCodeOnTheirOwnThreads() {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.SMP_HELLO, 2, 0, null)) {
            VmExit exit = guest.run(TIMEOUT).orElseThrow();

            assertThat(exit.reason()).isEqualTo(VmExit.Reason.HALTED);
            assertThat(guest.console().text().lines()).containsExactlyInAnyOrder("Hello from vCPU 0", "Hello from vCPU 1");
            assertThat(guest.console().writerThreads()).containsExactlyInAnyOrder("vcpu-0", "vcpu-1");
        }
    }

    @Test
    void portLoopExitsOncePerIteration() {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.PORT_LOOP, 1, 1000, null)) {
            assertThat(guest.run(TIMEOUT).orElseThrow().reason()).isEqualTo(VmExit.Reason.HALTED);
            assertThat(guest.loopPort().writes()).isEqualTo(1000);
        }
    }
}
