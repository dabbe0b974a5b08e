package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GuestSpecTest {
    @TempDir Path tmp;

    private GuestSpec spec(String... shares) throws IOException {
        Path kernel = Files.writeString(tmp.resolve("vmlinux"), "k");
        Path initramfs = Files.writeString(tmp.resolve("initramfs.cpio.gz"), "i");
        return new GuestSpec(kernel, initramfs, List.of(shares).stream().map(GuestSpec.Share::parse).toList(), 2, 512,
                shares.length == 0 ? Reset.SNAPSHOT : Reset.NONE);
    }

    @PanamaxTest(kernel = "pom.xml", initramfs = "pom.xml")
    static final class Plain {}

    @PanamaxTest(kernel = "pom.xml", initramfs = "pom.xml", reset = Reset.NONE)
    static final class SharedGuest {}

    @PanamaxTest(kernel = "pom.xml", initramfs = "pom.xml", shares = "src")
    static final class WithShares {}

    @Test
    void aClassIsResetFromASnapshotUnlessItSaysNoneSharesOrNot() throws IOException {
        assertThat(GuestSpec.of(Plain.class.getAnnotation(PanamaxTest.class)).reset()).isEqualTo(Reset.SNAPSHOT);
        assertThat(GuestSpec.of(SharedGuest.class.getAnnotation(PanamaxTest.class)).reset()).isEqualTo(Reset.NONE);
        assertThat(GuestSpec.of(WithShares.class.getAnnotation(PanamaxTest.class)).reset()).isEqualTo(Reset.SNAPSHOT);
        GuestSpec snapshot = spec();
        assertThat(GuestSpec.fromServerArgs(snapshot.serverArgs()).reset()).isEqualTo(Reset.SNAPSHOT);
        Files.createDirectories(tmp.resolve("s"));
        GuestSpec withShare = new GuestSpec(snapshot.kernel(), snapshot.initramfs(), List.of(GuestSpec.Share.parse(tmp.resolve("s").toString())),
                1, 256, Reset.SNAPSHOT);
        assertThat(GuestSpec.fromServerArgs(withShare.serverArgs())).isEqualTo(withShare);
        assertThatThrownBy(() -> GuestSpec.fromServerArgs(List.of("reset=always"))).hasMessageContaining("'reset=always': snapshot or none");
    }

    @Test
    void theServerReadsTheSpecItsArgumentsCarry() throws IOException {
        Path data = Files.createDirectories(tmp.resolve("data"));
        Path other = Files.createDirectories(tmp.resolve("other dir"));
        GuestSpec spec = spec(data.toString(), other + ",tag=o,readonly");
        assertThat(GuestSpec.fromServerArgs(spec.serverArgs())).isEqualTo(spec);
        assertThat(spec.shares()).containsExactly(new GuestSpec.Share(data, "data", false), new GuestSpec.Share(other, "o", true));
        assertThat(spec.hostDirectories()).containsExactly(tmp, tmp, data, other);
    }

    @Test
    void theGuestsCommandLineMountsTheSharesAndLoopsTheAgent() throws IOException {
        Files.createDirectories(tmp.resolve("a"));
        Files.createDirectories(tmp.resolve("b"));
        assertThat(GuestServer.commandLine(spec(tmp.resolve("a").toString(), tmp.resolve("b") + ",tag=bee")))
                .isEqualTo("quiet loglevel=5 panamax.shares=a:/mnt/a,bee:/mnt/bee panamax.run=\"" + GuestServer.AGENT_LOOP + "\"");
        assertThat(GuestServer.commandLine(spec())).isEqualTo("quiet loglevel=5 panamax.run=\"" + GuestServer.AGENT_LOOP + "\"");
        assertThat(GuestServer.AGENT_LOOP).doesNotContain("\"");
    }

    @Test
    void badValuesAreNamed() throws IOException {
        Files.createDirectories(tmp.resolve("d"));
        String d = tmp.resolve("d").toString();
        assertThatThrownBy(() -> GuestSpec.Share.parse(d + ",rw")).hasMessageContaining("unknown option 'rw'");
        assertThatThrownBy(() -> GuestSpec.Share.parse(d + ",tag=a b")).hasMessageContaining("share tag 'a b'");
        assertThatThrownBy(() -> GuestSpec.Share.parse(tmp.resolve("missing").toString())).hasMessageContaining("is not a directory");
        assertThatThrownBy(() -> GuestSpec.Share.parse(",tag=x")).hasMessageContaining("no directory");
        assertThatThrownBy(() -> spec(d, d)).hasMessageContaining("two shares with the tag d");
        GuestSpec ok = spec();
        assertThatThrownBy(() -> new GuestSpec(ok.kernel(), ok.initramfs(), List.of(), 0, 256, Reset.NONE)).hasMessageContaining("cpus = 0");
        assertThatThrownBy(() -> new GuestSpec(ok.kernel(), ok.initramfs(), List.of(), 1, 16, Reset.NONE)).hasMessageContaining("memoryMib = 16");
        assertThatThrownBy(() -> GuestSpec.fromServerArgs(List.of("kernel=" + ok.kernel()))).hasMessageContaining("kernel= and initramfs=");
        assertThatThrownBy(() -> GuestSpec.fromServerArgs(List.of("cpus=two"))).hasMessageContaining("'cpus=two': not a whole number");
        assertThatThrownBy(() -> GuestSpec.fromServerArgs(List.of("disk=x"))).hasMessageContaining("unknown argument 'disk=x'");
        assertThatThrownBy(() -> GuestSpec.fromServerArgs(List.of("kernel=" + tmp.resolve("none")))).hasMessageContaining("no such file");
    }
}
