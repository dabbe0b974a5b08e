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
 * Compiles a C program against this system's {@code <sys/prctl.h>}, {@code <sys/syscall.h>}, {@code
 * <linux/seccomp.h>} and {@code <linux/filter.h>} and checks every constant and layout of {@link Credentials}.
 */
class CredentialsAbiTest {

    @Test
    void everyLayoutAndConstantMatchesTheHeaders(@TempDir Path dir) throws IOException, InterruptedException, IllegalAccessException {
        Map<String, Long> expected = new LinkedHashMap<>();
        Credentials.STRUCTS.forEach(struct -> CHeaders.addStruct(expected, struct));
        int constants = 0;
        for (Field field : Credentials.class.getDeclaredFields()) {
            boolean number = field.getType() == int.class || field.getType() == long.class;
            if (Modifier.isStatic(field.getModifiers()) && number && !field.getName().equals("MAX_ID")) {
                field.setAccessible(true);
                expected.put("(long long)" + field.getName(), ((Number) field.get(null)).longValue());
                constants++;
            }
        }
        assertThat(constants).as("constants found by reflection").isEqualTo(8);
        assertThat(expected).containsKeys("offsetof(struct sock_fprog, filter)", "offsetof(struct sock_filter, k)");
        List<String> includes = List.of("sys/prctl.h", "sys/syscall.h", "linux/seccomp.h", "linux/filter.h");
        assertThat(CHeaders.mismatches(dir, includes, expected)).as("declarations that differ from the C headers").isEmpty();
    }

    @Test
    void aThreadsStatusIsReadLineByLine() {
        Credentials.ThreadCredentials t = Credentials.parseStatus(42, List.of("Name:\tvcpu-0", "State:\tS (sleeping)",
                "Uid:\t65534\t65534\t65534\t65534", "Gid:\t100\t100\t100\t100", "Groups:\t", "CapPrm:\t0000000000000000",
                "CapEff:\t0000000000000000", "NoNewPrivs:\t1"));
        assertThat(t).isEqualTo(new Credentials.ThreadCredentials(42, "vcpu-0", List.of(65534L, 65534L, 65534L, 65534L),
                List.of(100L, 100L, 100L, 100L), List.of(), true, 0, 0));
        assertThat(t.isOnly(65534, 100)).isTrue();
        assertThat(t.isOnly(65534, 65534)).isFalse();
        Credentials.ThreadCredentials root = Credentials.parseStatus(7, List.of("Name:\tjava", "Uid:\t0\t0\t0\t0", "Gid:\t0\t0\t0\t0",
                "Groups:\t0 4 27 ", "CapPrm:\t000001ffffffffff", "CapEff:\t000001ffffffffff", "NoNewPrivs:\t0"));
        assertThat(root.groups()).containsExactly(0L, 4L, 27L);
        assertThat(root.noNewPrivs()).isFalse();
        assertThat(root.capabilitiesEffective()).isEqualTo(0x1ffffffffffL);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> Credentials.parseStatus(8, List.of("Name:\told", "Uid:\t0\t0\t0\t0")))
                .hasMessageContaining("/proc/self/task/8/status lacks");
    }

    @Test
    void thisProcessIsWhatLibcSays() {
        Credentials.ThreadCredentials self = Credentials.threads().stream()
                .filter(t -> t.tid() == HostThreads.currentThreadId()).findFirst().orElseThrow();
        assertThat(self.uids().get(0)).isEqualTo(Credentials.realUserId());
        assertThat(self.uids().get(1)).isEqualTo(Credentials.effectiveUserId());
        assertThat(self.gids().get(0)).isEqualTo(Credentials.realGroupId());
        assertThat(self.gids().get(1)).isEqualTo(Credentials.effectiveGroupId());
        assertThat(self.noNewPrivs()).isEqualTo(Credentials.newPrivilegesForbidden());
    }
}
