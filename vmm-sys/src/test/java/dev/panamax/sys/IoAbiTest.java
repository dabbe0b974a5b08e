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
 * Compiles a C program against this system's {@code <linux/if_tun.h>}, {@code <net/if.h>}, {@code
 * <sys/epoll.h>}, {@code <sys/un.h>} and {@code <linux/io_uring.h>} and checks every layout, ioctl number and constant of {@link
 * IoAbi}.
 */
class IoAbiTest {

    @Test
    void everyLayoutAndConstantMatchesTheHeaders(@TempDir Path dir) throws IOException, InterruptedException, IllegalAccessException {
        Map<String, Long> expected = new LinkedHashMap<>();
        IoAbi.STRUCTS.forEach(struct -> CHeaders.addStruct(expected, struct));
        int constants = 0;
        for (Field field : IoAbi.class.getDeclaredFields()) {
            boolean number = field.getType() == int.class || field.getType() == long.class;
            if (Modifier.isStatic(field.getModifiers()) && number) {
                field.setAccessible(true);
                expected.put("(long long)" + field.getName(), ((Number) field.get(null)).longValue());
                constants++;
            }
        }
        assertThat(constants).as("constants found by reflection").isGreaterThan(25);
        assertThat(expected).containsKeys("offsetof(struct ifreq, ifr_flags)", "offsetof(struct epoll_event, data)",
                "offsetof(struct sockaddr_un, sun_path)",
                "offsetof(struct io_uring_params, cq_off.cqes)", "offsetof(struct io_uring_sqe, user_data)");
        List<String> includes = List.of("sys/ioctl.h", "net/if.h", "linux/if_tun.h", "sys/epoll.h", "sys/socket.h", "sys/un.h", "linux/io_uring.h");
        assertThat(CHeaders.mismatches(dir, includes, expected)).as("declarations that differ from the C headers").isEmpty();
    }
}
