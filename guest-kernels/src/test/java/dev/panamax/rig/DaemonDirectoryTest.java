package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where the warm rig's daemon lives, and the directories it refuses: anyone who reaches its socket runs commands as this user. */
class DaemonDirectoryTest {
    @TempDir
    Path runtime;

    @Test
    void itIsCreatedOwnerOnlyInTheRuntimeDirectory() throws IOException {
        DaemonDirectory d = DaemonDirectory.of(Map.of("XDG_RUNTIME_DIR", runtime.toString()), DaemonDirectory.uid());
        assertThat(d.path()).isEqualTo(runtime.resolve("panamax"));
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(d.path()))).isEqualTo("rwx------");
        assertThat(d.socket()).isEqualTo(runtime.resolve("panamax/rig.sock"));
        // and found again as it is
        assertThat(DaemonDirectory.of(Map.of("XDG_RUNTIME_DIR", runtime.toString()), DaemonDirectory.uid())).isEqualTo(d);
    }

    @Test
    void withoutARuntimeDirectoryItIsInTmpNamedByTheUid() throws IOException {
        int uid = DaemonDirectory.uid();
        assertThat(DaemonDirectory.of(Map.of(), uid).path()).isEqualTo(Path.of("/tmp/panamax-" + uid));
        assertThat(DaemonDirectory.of(Map.of("XDG_RUNTIME_DIR", "relative/dir"), uid).path()).isEqualTo(Path.of("/tmp/panamax-" + uid));
    }

    @Test
    void aDirectoryOthersCanEnterIsRefused() throws IOException {
        Files.createDirectory(runtime.resolve("panamax"), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
        assertThatThrownBy(() -> DaemonDirectory.of(Map.of("XDG_RUNTIME_DIR", runtime.toString()), DaemonDirectory.uid()))
                .isInstanceOf(IOException.class).hasMessageContaining("has mode rwxr-xr-x, not rwx------");
    }

    @Test
    void aSymbolicLinkIsRefusedEvenToAGoodDirectory() throws IOException {
        Path target = Files.createDirectory(runtime.resolve("elsewhere"), PosixFilePermissions.asFileAttribute(DaemonDirectory.OWNER_ONLY));
        Files.createSymbolicLink(runtime.resolve("panamax"), target);
        assertThatThrownBy(() -> DaemonDirectory.of(Map.of("XDG_RUNTIME_DIR", runtime.toString()), DaemonDirectory.uid()))
                .isInstanceOf(IOException.class).hasMessageContaining("is not a directory (a symbolic link");
    }

    @Test
    void anotherUsersDirectoryIsRefused() throws IOException {
        Path dir = Files.createDirectory(runtime.resolve("panamax"), PosixFilePermissions.asFileAttribute(DaemonDirectory.OWNER_ONLY));
        int someoneElse = DaemonDirectory.uid() + 1;
        assertThatThrownBy(() -> DaemonDirectory.check(dir, someoneElse)).isInstanceOf(IOException.class)
                .hasMessageContaining("belongs to uid " + DaemonDirectory.uid() + ", not to this user (" + someoneElse + ")");
    }
}
