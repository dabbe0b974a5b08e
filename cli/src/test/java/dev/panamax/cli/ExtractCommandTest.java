package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.cli.common.UserError;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code panamax image extract}'s arguments, refused before any guest boots (extracting itself is
 * {@code ImageExtractTest}, where real KVM is).
 */
class ExtractCommandTest {
    @TempDir
    Path dir;

    @Test
    void aPathInTheImageIsAbsoluteWithoutDotParts() {
        assertThat(ExtractCommand.imagePath("/")).isEqualTo("/");
        assertThat(ExtractCommand.imagePath("/etc//fstab")).isEqualTo("/etc/fstab");
        assertThat(ExtractCommand.imagePath("/home/me/")).isEqualTo("/home/me");
        assertThat(ExtractCommand.imagePath("/dir with space/ünï")).isEqualTo("/dir with space/ünï");
        assertThatThrownBy(() -> ExtractCommand.imagePath("etc/fstab")).isInstanceOf(UserError.class)
                .hasMessage("'etc/fstab': a path in the image starts with /, like /etc/fstab");
        assertThatThrownBy(() -> ExtractCommand.imagePath("/etc/../root")).isInstanceOf(UserError.class)
                .hasMessage("'/etc/../root': a path in the image has no . or .. parts");
        assertThatThrownBy(() -> ExtractCommand.imagePath("/./x")).isInstanceOf(UserError.class);
        assertThatThrownBy(() -> ExtractCommand.imagePath("/a\nb")).isInstanceOf(UserError.class)
                .hasMessage("a path in the image cannot hold a NUL or a newline");
    }

    @Test
    void badArgumentsAreRefusedWithStatus2BeforeAnyBoot() throws Exception {
        Path image = Files.write(dir.resolve("disk.raw"), new byte[1 << 20]);
        Path file = Files.writeString(dir.resolve("file"), "x");

        CliRun noDest = CliRun.panamax("image", "extract", image.toString(), "/etc");
        assertThat(noDest.status()).isEqualTo(2);
        assertThat(noDest.err()).contains("give at least one SRC, a path in the image, and DEST");

        CliRun destIsAFile = CliRun.panamax("image", "extract", image.toString(), "/etc", file.toString());
        assertThat(destIsAFile.status()).isEqualTo(2);
        assertThat(destIsAFile.err()).contains("DEST " + file + " is not a directory");

        CliRun relative = CliRun.panamax("image", "extract", image.toString(), "1", "etc", dir.resolve("out").toString());
        assertThat(relative.status()).isEqualTo(2);
        assertThat(relative.err()).contains("'etc': a path in the image starts with /");

        CliRun partitionLate = CliRun.panamax("image", "extract", "--list", image.toString(), "/etc", "2");
        assertThat(partitionLate.err()).contains("'2': a path in the image starts with /, like /etc/fstab (a PARTITION comes right after IMAGE)");

        CliRun missing = CliRun.panamax("image", "extract", "--list", dir.resolve("nope.qcow2").toString());
        assertThat(missing.status()).isEqualTo(2);
        assertThat(missing.err()).contains("IMAGE: " + dir.resolve("nope.qcow2") + " does not exist");

        Path qed = Files.write(dir.resolve("disk.qed"), new byte[] {'Q', 'E', 'D', 0, 0, 0, 0, 0});
        CliRun unsupported = CliRun.panamax("image", "extract", "--list", qed.toString());
        assertThat(unsupported.status()).isEqualTo(2);
        assertThat(unsupported.err()).contains("IMAGE: ").contains("QED");

        CliRun badFormat = CliRun.panamax("image", "extract", "--list", "-f", "qed", image.toString());
        assertThat(badFormat.status()).isEqualTo(2);
        assertThat(badFormat.err()).contains("--format qed: raw, qcow2, vhd, vmdk, vdi or vhdx");
    }
}
