package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.api.CpuAffinity;
import dev.panamax.api.HugePages;
import dev.panamax.cli.common.UserError;
import org.junit.jupiter.api.Test;

/** {@code run --cpus N,affinity=...} and {@code --memory SIZE,hugepages=...}. */
class CpuOptionTest {
    @Test
    void theCountAloneOrWithVcpuAndIoAffinities() {
        assertThat(CpuOption.parse("3")).isEqualTo(new CpuOption.Parsed(3, CpuAffinity.NONE));
        assertThat(CpuOption.parse("2,affinity=0@[1],1@[0]"))
                .isEqualTo(new CpuOption.Parsed(2, CpuAffinity.NONE.withVcpu(0, 1).withVcpu(1, 0)));
        assertThat(CpuOption.parse("2,affinity=0@[2,4-5],io@[0-1]"))
                .isEqualTo(new CpuOption.Parsed(2, CpuAffinity.NONE.withVcpu(0, 2, 4, 5).withIoThreads(0, 1)));
        assertThat(CpuOption.parse("1,affinity=io@[3]")).isEqualTo(new CpuOption.Parsed(1, CpuAffinity.NONE.withIoThreads(3)));
    }

    @Test
    void aMalformedOrImpossibleAffinityIsRefusedNamingTheOption() {
        assertRefused("two", "--cpus two: 'two' is not a vCPU count (N[,affinity=VCPU@[CPUS],...,io@[CPUS]])");
        assertRefused("0", "--cpus: 0 vCPUs is out of range: a guest has 1 to 254");
        assertRefused("2,0@[1]", "--cpus 2,0@[1]: after the count comes affinity=..., not '0@[1]' (N[,affinity=VCPU@[CPUS],...,io@[CPUS]])");
        assertRefused("2,affinity=2@[0]", "--cpus 2,affinity=2@[0]: vCPU 2 does not exist: the VM has 2 vCPUs, numbered 0 to 1");
        assertRefused("2,affinity=0@1", "--cpus 2,affinity=0@1: '0@1' is not an affinity entry: write VCPU@[CPUS] or io@[CPUS],"
                + " e.g. 0@[2],1@[3],io@[0-1]");
        assertRefused("2,affinity=0@[1],0@[2]", "--cpus 2,affinity=0@[1],0@[2]: vCPU 0 is given CPUs twice; give each vCPU once");
        assertRefused("2,affinity=io@[1],io@[2]", "--cpus 2,affinity=io@[1],io@[2]: the I/O threads are given CPUs twice (io@[...]); give them once");
        assertRefused("2,affinity=0@[]", "--cpus 2,affinity=0@[]: in 0@[], the CPU list is empty; write CPUs like 0-3,8");
        assertRefused("2,affinity=0@[1-x]", "--cpus 2,affinity=0@[1-x]: in 0@[1-x], '1-x' is not a CPU list: write CPU numbers and ranges like 0-3,8");
        assertRefused("2,affinity=0@[9000]", "--cpus 2,affinity=0@[9000]: in 0@[9000], '9000' names CPU 9000, and CPUs are numbered 0 to 8191");
        assertRefused("2,affinity=", "--cpus 2,affinity=: '' is not an affinity entry: write VCPU@[CPUS] or io@[CPUS], e.g. 0@[2],1@[3],io@[0-1]");
    }

    private static void assertRefused(String spec, String message) {
        assertThatThrownBy(() -> CpuOption.parse(spec)).isInstanceOf(UserError.class).hasMessage(message);
    }

    @Test
    void memoryTakesAHugePageSize() {
        assertThat(MemorySize.parseWithPages("1G,hugepages=2M", "--memory")).isEqualTo(new MemorySize.WithPages(1L << 30, HugePages.SIZE_2M));
        assertThat(MemorySize.parseWithPages("2G,hugepages=1g", "--memory")).isEqualTo(new MemorySize.WithPages(2L << 30, HugePages.SIZE_1G));
        assertThat(MemorySize.parseWithPages("256M", "--memory")).isEqualTo(new MemorySize.WithPages(256L << 20, HugePages.NONE));
        assertThatThrownBy(() -> MemorySize.parseWithPages("1G,hugepages=4M", "--memory")).isInstanceOf(UserError.class)
                .hasMessage("--memory 1G,hugepages=4M: the huge page size is 2M or 1G (or none), not '4M'");
        assertThatThrownBy(() -> MemorySize.parseWithPages("1G,huge", "--memory")).isInstanceOf(UserError.class)
                .hasMessage("--memory 1G,huge: 'huge' is not an option of it (SIZE[,hugepages=2M|1G])");
    }
}
