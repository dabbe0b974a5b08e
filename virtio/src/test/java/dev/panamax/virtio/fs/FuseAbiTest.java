package dev.panamax.virtio.fs;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.testing.CHeaders;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Compiles every layout and constant of {@link Fuse} against the system's {@code <linux/fuse.h>}. */
class FuseAbiTest {
    /** Constants of this server, not of the header. */
    private static final Set<String> OURS = Set.of("SERVER_MINOR");

    @Test
    void everyLayoutAndConstantMatchesLinuxFuseH(@TempDir Path dir) throws Exception {
        Map<String, Long> expected = new LinkedHashMap<>();
        Fuse.STRUCTS.forEach(struct -> CHeaders.addStruct(expected, struct));
        int constants = 0;
        for (Field field : Fuse.class.getDeclaredFields()) {
            if (Modifier.isStatic(field.getModifiers()) && field.getType() == int.class && !OURS.contains(field.getName())) {
                field.setAccessible(true);
                expected.put("(long long)" + field.getName(), (long) field.getInt(null));
                constants++;
            }
        }
        assertThat(constants).as("constants found by reflection").isGreaterThan(50);
        assertThat(expected).containsKeys("sizeof(struct fuse_init_out)", "offsetof(struct fuse_direntplus, dirent)");
        assertThat(CHeaders.mismatches(dir, List.of("linux/fuse.h"), expected)).as("declarations that differ from <linux/fuse.h>").isEmpty();
    }
}
