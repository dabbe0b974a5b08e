package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.testing.CHeaders;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compiles a C program against this system's {@code <linux/seccomp.h>}, {@code <linux/filter.h>},
 * {@code <linux/audit.h>}, {@code <sys/prctl.h>} and {@code <sys/syscall.h>} and checks every layout and
 * constant of {@link SeccompAbi}, and every number of {@link Syscalls} the headers have.
 */
class SeccompAbiTest {

    @Test
    void everyLayoutConstantAndSyscallNumberMatchesTheHeaders(@TempDir Path dir) throws IOException, InterruptedException, IllegalAccessException {
        Map<String, Long> expected = new LinkedHashMap<>();
        SeccompAbi.STRUCTS.forEach(struct -> CHeaders.addStruct(expected, struct));
        for (Field field : SeccompAbi.class.getDeclaredFields()) {
            boolean number = field.getType() == int.class || field.getType() == long.class;
            if (Modifier.isStatic(field.getModifiers()) && number && !field.getName().startsWith("DATA_") && !field.getName().startsWith("NOTIF_")) {
                field.setAccessible(true);
                expected.put((field.getType() == int.class ? "(int)" : "(long long)") + field.getName(), ((Number) field.get(null)).longValue());
            }
        }
        int syscalls = 0;
        for (Map.Entry<String, Integer> e : Syscalls.all().entrySet()) {
            if (e.getValue() <= 450) { // the newest this host's headers know; the rest is from the kernel's table
                expected.put("__NR_" + e.getKey(), (long) e.getValue());
                syscalls++;
            }
        }
        assertThat(syscalls).isGreaterThan(350);
        List<String> includes = List.of("sys/ioctl.h", "sys/prctl.h", "sys/syscall.h", "linux/seccomp.h", "linux/filter.h", "linux/audit.h");
        assertThat(CHeaders.mismatches(dir, includes, expected)).as("declarations that differ from the C headers").isEmpty();
    }
}
