package dev.panamax.virtio.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class NetSpecTest {

    @Test
    void readsTapsByNameAndByDescriptor() {
        NetSpec.Tap named = (NetSpec.Tap) NetSpec.parse("tap=tap0,mac=52:54:00:12:34:56");
        assertThat(named.name()).isEqualTo("tap0");
        assertThat(named.fd()).isEqualTo(-1);
        assertThat(named.mac()).isEqualTo(MacAddress.parse("52:54:00:12:34:56"));

        NetSpec.Tap inherited = (NetSpec.Tap) NetSpec.parse("tap,fd=3");
        assertThat(inherited.name()).isNull();
        assertThat(inherited.fd()).isEqualTo(3);
        assertThat(inherited.mac().locallyAdministered()).as("a random address when none is given").isTrue();
    }

    @Test
    void readsUserModeWithAndWithoutASocket() {
        NetSpec.User started = (NetSpec.User) NetSpec.parse("user");
        assertThat(started.socket()).isNull();
        NetSpec.User given = (NetSpec.User) NetSpec.parse("user,socket=/run/passt.sock,mac=52:54:00:00:00:02");
        assertThat(given.socket()).isEqualTo(Path.of("/run/passt.sock"));
        assertThat(given.mac().toString()).isEqualTo("52:54:00:00:00:02");
    }

    @Test
    void badValuesAreNamedWithWhatIsExpected() {
        assertBad("slirp", "--net slirp: 'slirp' is not a kind of NIC: use tap=NAME, tap,fd=N or user");
        assertBad("tap", "--net tap: name the tap (tap=NAME), or pass an open one (tap,fd=N)");
        assertBad("tap=", "--net tap=: a tap needs a name, such as tap0");
        assertBad("tap=a-name-far-too-long", "longer than 15 bytes");
        assertBad("tap=tap0,mac=52:54:00:12:34", "--net tap=tap0,mac=52:54:00:12:34: MAC address '52:54:00:12:34' is not six pairs");
        assertBad("tap=tap0,mac=01:00:5e:00:00:01", "is a multicast address");
        assertBad("tap=tap0,fd=3", "not both");
        assertBad("tap,fd=-1", "fd=-1 is not a file descriptor number");
        assertBad("tap,fd=x", "fd=x is not a file descriptor number");
        assertBad("tap=tap0,speed=10", "unknown option speed=; a tap takes mac= and, instead of a name, fd=");
        assertBad("tap=tap0,mac", "'mac' is not KEY=VALUE");
        assertBad("tap=tap0,mac=52:54:00:12:34:56,mac=52:54:00:12:34:57", "mac= is given twice");
        assertBad("user=passt", "user takes no value");
        assertBad("user,fd=3", "unknown option fd=; user takes mac= and socket=");
    }

    private static void assertBad(String text, String message) {
        assertThatThrownBy(() -> NetSpec.parse(text)).as(text).isInstanceOf(IllegalArgumentException.class).hasMessageContaining(message);
    }
}
