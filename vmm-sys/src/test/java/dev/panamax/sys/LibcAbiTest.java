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
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compiles a C program against this system's libc headers and checks every errno value, flag and
 * struct layout {@link Libc} declares.
 */
class LibcAbiTest {

    /** Expression in C -> the value Java uses. */
    private static Map<String, Long> javaFacts() {
        Map<String, Long> facts = new LinkedHashMap<>();
        Stream.of(Libc.FLOCK, Libc.IOVEC).forEach(struct -> CHeaders.addStruct(facts, struct));
        for (Field field : Libc.class.getDeclaredFields()) {
            boolean constant = Modifier.isStatic(field.getModifiers()) && field.getType() == int.class;
            if (constant && !field.getName().equals("KERNEL_SIGSET_BYTES")) {
                String expression = field.getName().equals("SIGSET_BYTES") ? "sizeof(sigset_t)" : field.getName();
                facts.put("(long long)" + expression, (long) intValue(field));
            }
        }
        return facts;
    }

    private static int intValue(Field field) {
        try {
            field.setAccessible(true);
            return field.getInt(null);
        } catch (IllegalAccessException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void everyLayoutAndConstantMatchesTheHeaders(@TempDir Path dir) throws IOException, InterruptedException {
        Map<String, Long> expected = javaFacts();
        assertThat(expected).hasSizeGreaterThan(45); // the walk found the constants, not just the structs
        List<String> includes = List.of("errno.h", "fcntl.h", "unistd.h", "signal.h", "sys/mman.h", "sys/eventfd.h", "sys/uio.h",
                "limits.h", "linux/falloc.h", "linux/mman.h", "sched.h");
        assertThat(CHeaders.mismatches(dir, includes, expected)).as("declarations that differ from the C headers").isEmpty();
    }
}
