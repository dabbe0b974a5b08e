package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * TAP devices of this host's kernel. Creating one needs CAP_NET_ADMIN: without it (not root) the
 * tests that need one are skipped and say so; CI runs them as root.
 */
class TapTest {
    private static final int HEADER = 12;
    private static final int FLAGS = IoAbi.IFF_TAP | IoAbi.IFF_NO_PI | IoAbi.IFF_VNET_HDR;

    /** A name no other test run on this host uses at the same time. */
    static String uniqueName() {
        return "pmx" + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextInt()).substring(0, 7);
    }

    private static Tap openOrSkip(String name) {
        try {
            return Tap.open(name, HEADER);
        } catch (NativeCallException e) {
            Assumptions.assumeFalse(e.errno() == Libc.EPERM || e.errno() == Libc.EACCES,
                    "creating a tap needs CAP_NET_ADMIN, which this test run lacks (" + e.getMessage() + "); run the tests as root, as CI does");
            throw e;
        }
    }

    @Test
    void opensATapThatLivesAsLongAsItsDescriptor() {
        String name = uniqueName();
        Tap tap = openOrSkip(name);
        try (tap) {
            assertThat(tap.name()).isEqualTo(name);
            assertThat(Path.of("/sys/class/net", name)).exists();
            assertThat(Files.exists(Path.of("/sys/class/net", name, "tun_flags"))).isTrue();
            assertThat(tap.supportedOffloads()).as("every Linux since 2.6.27 offers checksums and TSO")
                    .contains(Tap.Offload.CSUM, Tap.Offload.TSO4, Tap.Offload.TSO6);
            assertThat(tap.toString()).contains(name);
        }
        assertThat(Path.of("/sys/class/net", name)).doesNotExist();
    }

    @Test
    void aDownTapHasNothingToReadAndRefusesFrames() throws NativeIoException {
        try (Tap tap = openOrSkip(uniqueName()); Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(HEADER + 65535);
            assertThat(tap.read(buffer)).isZero();
            MemorySegment frame = arena.allocate(HEADER + 60); // zero header, zero Ethernet frame
            assertThat(tap.write(new MemorySegment[] {frame}, 1)).isEqualTo(Tap.WriteResult.REFUSED);
        }
    }

    @Test
    void setsOnlyOffloadsItSupportsAndChecksumFirst() {
        try (Tap tap = openOrSkip(uniqueName())) {
            tap.setOffloads(EnumSet.of(Tap.Offload.CSUM, Tap.Offload.TSO4));
            tap.setOffloads(Set.of());
            assertThatThrownBy(() -> tap.setOffloads(EnumSet.of(Tap.Offload.TSO4)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("need CSUM");
        }
    }

    @Test
    void aSecondOpenOfTheSameTapSaysItIsInUse() {
        String name = uniqueName();
        try (Tap _ = openOrSkip(name)) {
            assertThatThrownBy(() -> Tap.open(name, HEADER)).isInstanceOf(NativeCallException.class)
                    .hasMessageContaining("TUNSETIFF, " + name).hasMessageContaining("EBUSY")
                    .hasMessageContaining("already in use by another program");
        }
    }

    @Test
    void adoptsATapSomeoneElseAttached() throws NativeIoException {
        try (Tap _ = openOrSkip(uniqueName())) {
            // only here to skip without CAP_NET_ADMIN
        }
        String name = uniqueName();
        int fd = attachRaw(name, FLAGS);
        try (Tap tap = Tap.adopt(fd, HEADER); Arena arena = Arena.ofConfined()) {
            assertThat(tap.name()).isEqualTo(name);
            assertThat(tap.fd()).isEqualTo(fd);
            assertThat(tap.read(arena.allocate(HEADER + 65535))).as("made non-blocking: nothing waits").isZero();
        }
        assertThat(Path.of("/sys/class/net", name)).doesNotExist();
    }

    @Test
    void refusesToAdoptWhatIsNotAVnetHeaderTap() {
        try (Tap _ = openOrSkip(uniqueName())) {
            // only here to skip without CAP_NET_ADMIN
        }
        int plain = attachRaw(uniqueName(), IoAbi.IFF_TAP | IoAbi.IFF_NO_PI);
        try {
            assertThatThrownBy(() -> Tap.adopt(plain, HEADER)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("without IFF_VNET_HDR");
        } finally {
            Libc.close(plain); // a refused descriptor stays the caller's
        }
        int unattached = Libc.open("/dev/net/tun", Libc.O_RDWR | Libc.O_CLOEXEC);
        try {
            assertThatThrownBy(() -> Tap.adopt(unattached, HEADER)).hasMessageContaining("not attached to a device");
        } finally {
            Libc.close(unattached);
        }
        try (EventFd notATap = EventFd.create(true)) {
            assertThatThrownBy(() -> Tap.adopt(notATap.fd(), HEADER)).hasMessageContaining("is not a TUN/TAP descriptor");
        }
    }

    @Test
    void namesLinuxRefusesAreRefusedWithTheReason() {
        assertThat(Tap.nameProblem("tap0")).isNull();
        assertThat(Tap.nameProblem("tap%d")).as("a pattern the kernel numbers").isNull();
        assertThat(Tap.nameProblem("")).contains("needs a name");
        assertThat(Tap.nameProblem("a-very-long-name0")).contains("longer than 15 bytes");
        assertThat(Tap.nameProblem("..")).contains("not allowed");
        assertThat(Tap.nameProblem("tap/0")).contains("contains '/'");
        assertThat(Tap.nameProblem("tap 0")).contains("contains ' '");
        assertThatThrownBy(() -> Tap.open("eth0:1", HEADER)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("contains ':'");
    }

    /** Opens /dev/net/tun and attaches it to {@code name} with {@code flags}, as another program would. */
    private static int attachRaw(String name, int flags) {
        int fd = Libc.open("/dev/net/tun", Libc.O_RDWR | Libc.O_CLOEXEC);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ifreq = arena.allocate(IoAbi.IFREQ);
            ifreq.setString(0, name);
            ifreq.set(JAVA_SHORT, IoAbi.IFNAMSIZ, (short) flags);
            Libc.ioctl(fd, IoAbi.TUNSETIFF, ifreq, "TUNSETIFF");
            return fd;
        }
    }
}
