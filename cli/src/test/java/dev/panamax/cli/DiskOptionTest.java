package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.api.DiskFormat;
import dev.panamax.api.Drive;
import dev.panamax.api.RateLimiter;
import dev.panamax.api.TokenBucket;
import dev.panamax.cli.common.UserError;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DiskOptionTest {
    @TempDir Path dir;

    @Test
    void bwAndIopsLimitTheDriveInBucketsOfOneSecond() throws Exception {
        Path image = Files.write(dir.resolve("d.raw"), new byte[4096]);
        Drive drive = DiskOption.parse(image + ",bw=10M,iops=500", 0);
        assertThat(drive.rateLimiter()).isEqualTo(new RateLimiter(new TokenBucket(10L << 20, 0, 1000), new TokenBucket(500, 0, 1000)));
        assertThat(DiskOption.parse(image + ",bw=4k", 0).rateLimiter()).isEqualTo(new RateLimiter(new TokenBucket(4096, 0, 1000), null));
        assertThat(DiskOption.parse(image.toString(), 0).rateLimiter()).isNull();
        assertThat(DiskOption.parse(DiskOption.format(drive), 0)).as("the copy of the option for the rig").isEqualTo(drive);
    }

    @Test
    void aGivenFormatIsTakenWithoutProbingAndKeptInTheCopyForTheRig() throws Exception {
        byte[] sparse = new byte[4096];
        System.arraycopy(new byte[] {'K', 'D', 'M', 'V'}, 0, sparse, 0, 4);
        Path vmdk = Files.write(dir.resolve("d.vmdk"), sparse);
        Drive drive = DiskOption.parse(vmdk + ",format=raw,readonly", 0);
        assertThat(drive.format()).isEqualTo(DiskFormat.RAW);
        assertThat(DiskOption.format(drive)).endsWith(",format=raw");
        assertThat(DiskOption.parse(DiskOption.format(drive), 0)).as("the copy of the option for the rig").isEqualTo(drive);
        assertThat(DiskOption.parse(vmdk + ",format=vpc,readonly", 1).format()).isEqualTo(DiskFormat.VHD);
        assertThat(DiskOption.parse(Files.write(dir.resolve("d.raw"), new byte[4096]).toString(), 2).format()).isNull();
        assertThat(DiskOption.parse(vmdk + ",format=vmdk,readonly", 3).format()).isEqualTo(DiskFormat.VMDK);
        assertThatThrownBy(() -> DiskOption.parse(vmdk.toString(), 4)).as("a sparse header with nothing else is damaged")
                .hasMessageContaining(vmdk + ": VMDK");
    }

    @Test
    void aCommaInThePathIsWrittenTwiceAndTheCopyForTheRigWritesItTwiceToo() throws Exception {
        Path image = Files.write(dir.resolve("a,b.raw"), new byte[4096]);
        Drive drive = DiskOption.parse(dir.resolve("a,,b.raw") + ",readonly,id=data", 0);
        assertThat(drive.path()).isEqualTo(image);
        assertThat(drive.readOnly()).isTrue();
        assertThat(drive.id()).isEqualTo("data");
        assertThat(DiskOption.format(drive)).startsWith(dir.resolve("a,,b.raw") + ",readonly");
        assertThat(DiskOption.parse(DiskOption.format(drive), 0)).isEqualTo(drive);
        assertThatThrownBy(() -> DiskOption.parse(image + ",readonly", 0)).as("a single comma still ends the path")
                .isInstanceOf(UserError.class).hasMessageContaining("unknown setting 'b.raw'");
    }

    @Test
    void theSettingsOfAnOptionReadADoubledCommaAsOneCommaOfAValue() {
        assertThat(OptionSettings.split("a,,b,readonly")).containsExactly("a,b", "readonly");
        assertThat(OptionSettings.split("a,,,readonly")).containsExactly("a,", "readonly");
        assertThat(OptionSettings.split(",readonly,")).containsExactly("", "readonly", "");
        assertThat(OptionSettings.split("plain")).containsExactly("plain");
        assertThat(OptionSettings.split(OptionSettings.escape("x,,y,z") + ",tag=t")).containsExactly("x,,y,z", "tag=t");
    }

    @Test
    void aSharedFolderWithACommaInItsPathComesBackWholeFromItsCopyForTheRig() throws Exception {
        Path folder = Files.createDirectory(dir.resolve("src,v2"));
        var share = RunCommand.parseShare(dir.resolve("src,,v2") + ",readonly", java.util.List.of());
        assertThat(share.path()).isEqualTo(folder);
        assertThat(share.readOnly()).isTrue();
        assertThat(RunCommand.parseShare(RunCommand.formatShare(share), java.util.List.of())).isEqualTo(share);
        assertThat(RunCommand.parseVsock("cid=3,uds=/tmp/v,,s").udsPath().toString()).isEqualTo("/tmp/v,s");
    }

    @Test
    void aBadRateIsRefusedNamingTheOption() throws Exception {
        Path image = Files.write(dir.resolve("d.raw"), new byte[4096]);
        assertThatThrownBy(() -> DiskOption.parse(image + ",bw=fast", 0)).isInstanceOf(UserError.class)
                .hasMessage("--disk " + image + ",bw=fast: 'fast' is not a rate: give bytes a second, e.g. 10M for 10 MiB");
        assertThatThrownBy(() -> DiskOption.parse(image + ",iops=5k", 0)).isInstanceOf(UserError.class)
                .hasMessage("--disk " + image + ",iops=5k: '5k' is not a rate: give requests a second, e.g. 500");
        assertThatThrownBy(() -> DiskOption.parse(image + ",bw=0", 0)).isInstanceOf(UserError.class)
                .hasMessage("--disk " + image + ",bw=0: the rate '0' is 0 or too large");
        assertThatThrownBy(() -> DiskOption.parse(image + ",bw=99999999999T", 0)).isInstanceOf(UserError.class)
                .hasMessageEndingWith("is 0 or too large");
    }
}
