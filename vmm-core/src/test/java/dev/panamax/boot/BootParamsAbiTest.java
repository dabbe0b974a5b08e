package dev.panamax.boot;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.testing.CHeaders;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The zero-page offsets Panamax writes, checked against the system's {@code <asm/bootparam.h>}. */
class BootParamsAbiTest {
    @Test
    void offsetsMatchBootparamH(@TempDir Path dir) throws Exception {
        Map<String, Long> expected = new LinkedHashMap<>();
        BootParams.FIELDS.forEach((member, offset) -> expected.put("offsetof(struct boot_params, " + member + ")", (long) offset));
        expected.put("sizeof(struct boot_params)", (long) BootParams.SIZE);
        expected.put("sizeof(struct boot_e820_entry)", (long) BootParams.E820_ENTRY_SIZE);
        expected.put("E820_MAX_ENTRIES_ZEROPAGE", (long) BootParams.E820_MAX_ENTRIES);
        expected.put("XLF_KERNEL_64", (long) BootParams.XLF_KERNEL_64);
        expected.put("LOADED_HIGH", (long) BootParams.LOADED_HIGH);
        expected.put("CAN_USE_HEAP", (long) BootParams.CAN_USE_HEAP);
        assertThat(CHeaders.mismatches(dir, List.of("asm/bootparam.h"), expected)).isEmpty();
    }
}
