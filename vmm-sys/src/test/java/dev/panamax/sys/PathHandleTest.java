package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The host calls of a file server, on real files in a temporary directory. */
class PathHandleTest {
    @TempDir
    Path dir;

    private static FileName name(String s) {
        return FileName.of(s);
    }

    private static int errno(ThrowingCall call) {
        try {
            call.run();
        } catch (NativeIoException e) {
            return e.errno();
        }
        throw new AssertionError("the call succeeded");
    }

    private interface ThrowingCall {
        void run() throws NativeIoException;
    }

    @Test
    void fileNamesAreSingleComponents() {
        assertThat(FileName.problem("a".getBytes())).isZero();
        assertThat(FileName.problem(new byte[0])).isEqualTo(FsAbi.EINVAL);
        assertThat(FileName.problem("a/b".getBytes())).isEqualTo(FsAbi.EINVAL);
        assertThat(FileName.problem(new byte[] {'a', 0, 'b'})).isEqualTo(FsAbi.EINVAL);
        assertThat(FileName.problem(".".getBytes())).isEqualTo(FsAbi.EINVAL);
        assertThat(FileName.problem("..".getBytes())).isEqualTo(FsAbi.EINVAL);
        assertThat(FileName.problem("...".getBytes())).isZero();
        assertThat(FileName.problem("x".repeat(255).getBytes())).isZero();
        assertThat(FileName.problem("x".repeat(256).getBytes())).isEqualTo(FsAbi.ENAMETOOLONG);
        assertThatThrownBy(() -> FileName.of("../etc")).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void createWriteReadListRenameLinkAndRemove() throws Exception {
        try (PathHandle root = PathHandle.openDirectory(dir); Arena arena = Arena.ofConfined()) {
            assertThat(root.stat().isDirectory()).isTrue();
            MemorySegment data = arena.allocateFrom("hello, host", StandardCharsets.US_ASCII);
            try (OpenFile file = root.create(name("a.txt"), FsAbi.O_RDWR | FsAbi.O_EXCL, 0640)) {
                assertThat(file.write(0, data)).isEqualTo(data.byteSize());
                file.sync(false);
                file.sync(true);
                MemorySegment back = arena.allocate(64);
                assertThat(file.read(0, back)).isEqualTo(data.byteSize());
                assertThat(back.getString(0, StandardCharsets.US_ASCII)).isEqualTo("hello, host");
                file.truncate(5);
                assertThat(file.stat().size()).isEqualTo(5);
                file.allocate(0, 0, 8192);
                assertThat(file.stat().size()).isEqualTo(8192);
                assertThat(file.seek(0, FsAbi.SEEK_DATA)).isZero();
                file.chmod(0600);
            }
            assertThat(errno(() -> root.create(name("a.txt"), FsAbi.O_RDWR | FsAbi.O_EXCL, 0640).close())).isEqualTo(FsAbi.EEXIST);
            assertThat(Files.size(dir.resolve("a.txt"))).isEqualTo(8192);
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("a.txt")))).isEqualTo("rw-------");

            root.makeDirectory(name("sub"), 0755);
            root.makeRegularFile(name("empty"), 0644);
            assertThat(errno(() -> root.makeRegularFile(name("fifo"), FsAbi.S_IFIFO | 0644))).isEqualTo(FsAbi.EPERM);
            try (PathHandle sub = root.lookup(name("sub")); PathHandle a = root.lookup(name("a.txt"))) {
                assertThat(sub.stat().isDirectory()).isTrue();
                sub.link(a, name("hard"));
                assertThat(a.stat().linkCount()).isEqualTo(2);
                root.rename(name("empty"), sub, name("moved"), FsAbi.RENAME_NOREPLACE);
                assertThat(errno(() -> sub.rename(name("moved"), sub, name("hard"), FsAbi.RENAME_NOREPLACE))).isEqualTo(FsAbi.EEXIST);
                try (PathHandle parent = sub.parent()) {
                    assertThat(parent.stat().sameFile(root.stat())).isTrue();
                }
                try (OpenFile listing = sub.reopen(FsAbi.O_RDONLY | FsAbi.O_DIRECTORY)) {
                    List<String> names = listing.readDirectory(0, 4096).stream().filter(e -> !e.isDotOrDotDot())
                            .map(e -> new String(e.name(), StandardCharsets.UTF_8)).sorted().toList();
                    assertThat(names).containsExactly("hard", "moved");
                }
                assertThat(errno(() -> root.remove(name("sub"), true))).isEqualTo(FsAbi.ENOTEMPTY);
                sub.remove(name("hard"), false);
                sub.remove(name("moved"), false);
            }
            root.remove(name("sub"), true);
            assertThat(errno(() -> root.lookup(name("sub")).close())).isEqualTo(FsAbi.ENOENT);
            assertThat(root.fileSystemStats().nameMax()).isPositive();
        }
    }

    @Test
    void aSymbolicLinkIsHandledAsItselfNeverFollowed(@TempDir Path outside) throws Exception {
        Path secret = Files.writeString(outside.resolve("secret"), "keep");
        FileTime before = FileTime.fromMillis(1_000_000_000_000L);
        Files.setLastModifiedTime(secret, before);
        Files.createSymbolicLink(dir.resolve("link"), secret);
        try (PathHandle root = PathHandle.openDirectory(dir); PathHandle link = root.lookup(name("link"))) {
            assertThat(link.stat().isSymbolicLink()).isTrue();
            assertThat(new String(link.readLink(), StandardCharsets.UTF_8)).isEqualTo(secret.toString());
            assertThat(errno(() -> link.reopen(FsAbi.O_RDWR | FsAbi.O_TRUNC).close())).isEqualTo(FsAbi.ELOOP);
            assertThat(errno(() -> root.create(name("link"), FsAbi.O_RDWR | FsAbi.O_TRUNC, 0644).close())).isEqualTo(FsAbi.ELOOP);
            link.setTimes(0, FsAbi.UTIME_NOW, 0, FsAbi.UTIME_NOW);
            assertThat(errno(() -> link.lookup(name("x")).close())).isEqualTo(FsAbi.ENOTDIR);
        }
        assertThat(Files.readString(secret)).isEqualTo("keep");
        assertThat(Files.getLastModifiedTime(secret)).isEqualTo(before);
    }

    @Test
    void symlinksStoreTheirTargetAndXattrsRoundTrip() throws Exception {
        try (PathHandle root = PathHandle.openDirectory(dir); Arena arena = Arena.ofConfined()) {
            root.symlink(name("s"), "../../etc/passwd".getBytes());
            try (PathHandle s = root.lookup(name("s"))) {
                assertThat(new String(s.readLink(), StandardCharsets.UTF_8)).isEqualTo("../../etc/passwd");
            }
            root.create(name("f"), FsAbi.O_RDWR, 0644).close();
            try (PathHandle f = root.lookup(name("f"))) {
                f.chmod(0604);
                assertThat(f.stat().mode() & 07777).isEqualTo(0604);
                f.setTimes(12345, 0, 67890, 5);
                assertThat(f.stat().mtimeSeconds()).isEqualTo(67890);
                assertThat(f.stat().atimeSeconds()).isEqualTo(12345);
                f.chown(-1, -1);
                byte[] attr = "user.panamax".getBytes();
                long set;
                try {
                    f.setXattr(attr, arena.allocateFrom("v1", StandardCharsets.US_ASCII), FsAbi.XATTR_CREATE);
                    set = 1;
                } catch (NativeIoException e) {
                    assertThat(e.errno()).as("only a file system without user xattrs may refuse").isEqualTo(FsAbi.EOPNOTSUPP);
                    set = 0;
                }
                if (set == 1) {
                    assertThat(f.getXattr(attr, MemorySegment.NULL)).isEqualTo(3);
                    MemorySegment value = arena.allocate(3);
                    f.getXattr(attr, value);
                    assertThat(value.getString(0, StandardCharsets.US_ASCII)).isEqualTo("v1");
                    MemorySegment list = arena.allocate(f.listXattrs(MemorySegment.NULL));
                    f.listXattrs(list);
                    assertThat(new String(list.toArray(ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII)).contains("user.panamax");
                    f.removeXattr(attr);
                    assertThat(errno(() -> f.getXattr(attr, MemorySegment.NULL))).isEqualTo(FsAbi.ENODATA);
                }
            }
        }
    }
}
