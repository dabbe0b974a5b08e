package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** What exec keeps of the guest's console: the last lines, and the kernel's Oops, BUG and WARN lines. */
class KernelLogTest {
    @Test
    void warningsOopsesAndBugsAreFoundAmongOrdinaryLines() {
        KernelLog log = new KernelLog();
        log.line("panamax: init reached");
        log.line("[    1.234] WARNING: CPU: 0 PID: 1 at kernel/fork.c:123 copy_process+0x1/0x2");
        log.line("[    1.235] Call Trace:");
        log.line("BUG: kernel NULL pointer dereference, address: 0000000000000000");
        log.line("Oops: 0002 [#1] SMP");
        log.line("general protection fault, probably for non-canonical address 0xdead: 0000 [#2] SMP");
        log.line("WARNING: this line is a program's, not the kernel's WARN");
        log.line("reboot: Restarting system");
        assertThat(log.warningCount()).isEqualTo(4);
        assertThat(log.warnings()).containsExactly("[    1.234] WARNING: CPU: 0 PID: 1 at kernel/fork.c:123 copy_process+0x1/0x2",
                "BUG: kernel NULL pointer dereference, address: 0000000000000000", "Oops: 0002 [#1] SMP",
                "general protection fault, probably for non-canonical address 0xdead: 0000 [#2] SMP");
    }

    @Test
    void onlyTheLastLinesAndTheFirstWarningsAreKept() {
        KernelLog log = new KernelLog();
        for (int n = 0; n < 1000; n++) {
            log.line("line " + n);
            log.line("WARNING: CPU: 1 PID: " + n + " at x");
        }
        assertThat(log.tail()).hasSize(KernelLog.KEPT_LINES).endsWith("line 999", "WARNING: CPU: 1 PID: 999 at x");
        assertThat(log.warnings()).hasSize(KernelLog.KEPT_WARNINGS).startsWith("WARNING: CPU: 1 PID: 0 at x");
        assertThat(log.warningCount()).isEqualTo(1000);
    }
}
