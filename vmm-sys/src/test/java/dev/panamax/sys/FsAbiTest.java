package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.testing.CHeaders;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Compiles a C program against this system's headers and checks every layout and constant of {@link FsAbi}. */
class FsAbiTest {

    @Test
    void everyLayoutAndConstantMatchesTheHeaders(@TempDir Path dir) throws Exception {
        Map<String, Long> expected = new LinkedHashMap<>();
        FsAbi.STRUCTS.forEach(struct -> CHeaders.addStruct(expected, struct));
        int constants = 0;
        for (Field field : FsAbi.class.getDeclaredFields()) {
            boolean number = field.getType() == int.class || field.getType() == long.class;
            if (Modifier.isStatic(field.getModifiers()) && number) {
                expected.put("(long long)" + field.getName(), ((Number) field.get(null)).longValue());
                constants++;
            }
        }
        assertThat(constants).as("constants found by reflection").isGreaterThan(60);
        assertThat(expected).containsKeys("offsetof(struct stat, st_mtim.tv_nsec)", "offsetof(struct dirent64, d_name)",
                "sizeof(struct statvfs)");
        List<String> includes = List.of("errno.h", "fcntl.h", "stdio.h", "unistd.h", "limits.h", "dirent.h", "sys/stat.h",
                "sys/statvfs.h", "sys/xattr.h", "linux/falloc.h", "linux/limits.h", "linux/xattr.h");
        assertThat(CHeaders.mismatches(dir, includes, expected)).as("declarations that differ from the C headers").isEmpty();
    }
}
