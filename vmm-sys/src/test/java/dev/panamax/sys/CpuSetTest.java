package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class CpuSetTest {
    @ParameterizedTest
    @CsvSource(delimiter = ';', value = {"0;0", "0-3;0-3", "3,1,2;1-3", "0-1,8,10-11;0-1,8,10-11", "5,5;5", " 7 ;7", "64,65,127;64-65,127"})
    void listsParseAndPrintAsLinuxWritesThem(String list, String printed) {
        assertThat(CpuSet.parse(list)).hasToString(printed);
    }

    @ParameterizedTest
    @ValueSource(strings = {"", " ", "a", "1,", ",1", "1--2", "-1", "1-", "3-1", "1.5", "+1", "0x1", "8192", "99999999"})
    void aMalformedListIsRefusedQuotingIt(String list) {
        assertThatThrownBy(() -> CpuSet.parse(list)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(list.isBlank() ? "empty" : "'" + list + "'");
    }

    @Test
    void theMaskHasCpuNBitNModulo64InWordNDividedBy64() {
        long[] words = CpuSet.of(0, 63, 65, 200).toWords();
        assertThat(words).containsExactly(1L | 1L << 63, 1L << 1, 0, 1L << 8);
        assertThat(CpuSet.ofWords(words)).isEqualTo(CpuSet.parse("0,63,65,200"));
    }

    @Test
    void minusLeavesTheCpusTheOtherLacks() {
        assertThat(CpuSet.parse("0-3").minus(CpuSet.parse("1-2"))).hasToString("0,3");
        assertThat(CpuSet.parse("1").minus(CpuSet.parse("0-3")).isEmpty()).isTrue();
    }

    @Test
    void theOnlineCpusIncludeTheOnesThisThreadMayUse() throws IOException {
        CpuSet online = CpuSet.online();
        assertThat(online.isEmpty()).isFalse();
        assertThat(CpuSet.ofCurrentThread().minus(online).isEmpty()).as("allowed CPUs that are not online").isTrue();
    }
}
