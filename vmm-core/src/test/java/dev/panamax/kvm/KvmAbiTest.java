package dev.panamax.kvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.testing.CHeaders;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compiles a C program against this system's {@code <linux/kvm.h>} and checks that every struct size,
 * member offset and size, ioctl number and constant of {@link KvmAbi} matches.
 */
class KvmAbiTest {

    /** Expression in C -> the value Java uses. */
    private static Map<String, Long> javaFacts() {
        Map<String, Long> facts = new LinkedHashMap<>();
        KvmAbi.STRUCTS.forEach(struct -> CHeaders.addStruct(facts, struct));
        KvmAbi.constants().forEach((name, value) -> facts.put("(long long)" + name, value));
        facts.put("(long long)(SIGRTMIN + 6)", (long) VcpuFd.KICK_SIGNAL);
        return facts;
    }

    @Test
    void everyLayoutAndConstantMatchesTheKernelHeaders(@TempDir Path dir) throws IOException, InterruptedException {
        Map<String, Long> expected = javaFacts();
        assertThat(expected).hasSizeGreaterThan(250); // the walk found the members, not just the structs
        List<String> includes = List.of("signal.h", "linux/kvm.h");
        assertThat(CHeaders.mismatches(dir, includes, expected)).as("declarations that differ from the C headers").isEmpty();
    }
}
