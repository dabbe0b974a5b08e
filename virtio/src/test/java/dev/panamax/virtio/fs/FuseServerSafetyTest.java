package dev.panamax.virtio.fs;

import static dev.panamax.virtio.fs.FuseTestClient.body;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.FsAbi;
import dev.panamax.virtio.fs.FuseTestClient.Entry;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a hostile guest may send: escapes from the share, writes to a read-only share, malformed requests, too many nodes. */
class FuseServerSafetyTest {
    private static final long ROOT = Fuse.FUSE_ROOT_ID;

    @TempDir
    Path base;

    private Path share;
    private Path outside;
    private FuseTestClient client;

    @BeforeEach
    void makeShare() throws Exception {
        share = Files.createDirectory(base.resolve("share"));
        outside = Files.writeString(base.resolve("secret"), "host only");
        Files.setLastModifiedTime(outside, FileTime.fromMillis(1_000_000_000_000L));
        Files.setPosixFilePermissions(outside, PosixFilePermissions.fromString("rw-r-----"));
        Files.createSymbolicLink(share.resolve("to-secret"), outside);
        Files.createSymbolicLink(share.resolve("to-etc"), Path.of("/etc"));
        Files.createSymbolicLink(share.resolve("up"), Path.of(".."));
        Files.createDirectory(share.resolve("sub"));
        Files.writeString(share.resolve("sub/file"), "inside");
    }

    private FuseTestClient start(boolean readOnly, int maxNodes, int maxHandles) throws Exception {
        client = new FuseTestClient(new FuseServer(share, readOnly, maxNodes, maxHandles));
        client.init().ok();
        return client;
    }

    @AfterEach
    void close() throws Exception {
        if (client != null) {
            assertThat(client.server.internalErrors()).as("requests that met a bug").isZero();
            client.server.close();
            client.close();
        }
        assertThat(Files.readString(outside)).as("the file outside the share").isEqualTo("host only");
        assertThat(Files.getLastModifiedTime(outside)).isEqualTo(FileTime.fromMillis(1_000_000_000_000L));
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(outside))).isEqualTo("rw-r-----");
    }

    private static int errno(FuseTestClient.Reply reply) {
        return reply.errno();
    }

    @Test
    void dotDotOfTheRootIsTheRootAndNamesAreOneComponent() throws Exception {
        start(false, 1 << 10, 16);
        assertThat(client.lookup(ROOT, "..").nodeId()).isEqualTo(ROOT);
        assertThat(client.lookup(ROOT, ".").nodeId()).isEqualTo(ROOT);
        Entry sub = client.lookup(ROOT, "sub");
        assertThat(client.lookup(sub.nodeId(), "..").nodeId()).isEqualTo(ROOT);
        assertThat(errno(client.lookupReply(ROOT, "../secret"))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.lookupReply(ROOT, "sub/file"))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.lookupReply(ROOT, "/etc"))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.lookupReply(ROOT, ""))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.lookupReply(ROOT, "x".repeat(256)))).isEqualTo(FsAbi.ENAMETOOLONG);
        assertThat(errno(client.call(Fuse.FUSE_MKDIR, ROOT, body().u32(0755).u32(0).name("..")))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.call(Fuse.FUSE_CREATE, ROOT, body().u32(FsAbi.O_RDWR).u32(0644).u32(0).u32(0).name("../escape"))))
                .isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.call(Fuse.FUSE_RENAME, ROOT, body().u64(ROOT).name("sub").name("../sub")))).isEqualTo(FsAbi.EINVAL);
        assertThat(base.resolve("escape")).doesNotExist();
        assertThat(share.resolve("sub")).isDirectory();
    }

    @Test
    void symbolicLinksAreServedAsLinksAndNeverFollowed() throws Exception {
        start(false, 1 << 10, 16);
        Entry toEtc = client.lookup(ROOT, "to-etc");
        assertThat(toEtc.mode() & FsAbi.S_IFMT).isEqualTo(FsAbi.S_IFLNK);
        assertThat(client.call(Fuse.FUSE_READLINK, toEtc.nodeId(), new byte[0]).ok().payload()).isEqualTo("/etc".getBytes());
        assertThat(errno(client.lookupReply(toEtc.nodeId(), "passwd"))).as("a child under a symlink").isEqualTo(FsAbi.ENOTDIR);
        assertThat(errno(client.call(Fuse.FUSE_OPENDIR, toEtc.nodeId(), body().u32(0).u32(0)))).isEqualTo(FsAbi.ENOTDIR);
        Entry up = client.lookup(ROOT, "up");
        assertThat(errno(client.lookupReply(up.nodeId(), "secret"))).isEqualTo(FsAbi.ENOTDIR);

        // A file outside the share with a symlink to it in the share: its node is the link, not the file.
        Entry link = client.lookup(ROOT, "to-secret");
        assertThat(link.mode() & FsAbi.S_IFMT).isEqualTo(FsAbi.S_IFLNK);
        assertThat(errno(client.call(Fuse.FUSE_OPEN, link.nodeId(), body().u32(FsAbi.O_RDWR).u32(0)))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.call(Fuse.FUSE_OPEN, link.nodeId(), body().u32(FsAbi.O_RDONLY).u32(0)))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.setattr(link.nodeId(), Fuse.FATTR_SIZE, 0, 0, 0, 0))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.setattr(link.nodeId(), Fuse.FATTR_MODE, 0, 0, 0, 0777))).isEqualTo(FsAbi.EOPNOTSUPP);
        client.setattr(link.nodeId(), Fuse.FATTR_MTIME, 0, 0, 5, 0).ok(); // the link's own time
        assertThat(Files.getLastModifiedTime(share.resolve("to-secret"), java.nio.file.LinkOption.NOFOLLOW_LINKS))
                .isEqualTo(FileTime.fromMillis(5000));
        // A write through a handle of another node never reaches it either.
        long[] created = client.create(ROOT, "f", FsAbi.O_RDWR, 0644);
        assertThat(errno(client.write(link.nodeId(), created[1] + 1, 0, "x".getBytes()))).isEqualTo(FsAbi.EBADF);
        // CREATE over the symlink's name must not open the file it points to.
        assertThat(errno(client.call(Fuse.FUSE_CREATE, ROOT, body().u32(FsAbi.O_RDWR | FsAbi.O_TRUNC).u32(0644).u32(0).u32(0)
                .name("to-secret")))).isEqualTo(FsAbi.ELOOP);
        assertThat(errno(client.call(Fuse.FUSE_GETXATTR, link.nodeId(), body().u32(0).u32(0).name("user.x")))).isEqualTo(FsAbi.EOPNOTSUPP);
    }

    @Test
    void onlyNodesTheGuestHoldsMayBeUsedOrLinked() throws Exception {
        start(false, 1 << 10, 16);
        assertThat(errno(client.call(Fuse.FUSE_LINK, ROOT, body().u64(12345).name("hard")))).isEqualTo(FsAbi.EBADF);
        assertThat(errno(client.call(Fuse.FUSE_LINK, ROOT, body().u64(ROOT).name("hard")))).as("a directory").isEqualTo(FsAbi.EPERM);
        for (long node : new long[] {0, 2, 99, Long.MAX_VALUE, -1}) {
            assertThat(errno(client.call(Fuse.FUSE_GETATTR, node, body().u32(0).u32(0).u64(0)))).isEqualTo(FsAbi.EBADF);
            assertThat(errno(client.lookupReply(node, "sub"))).isEqualTo(FsAbi.EBADF);
        }
        Entry file = client.lookup(client.lookup(ROOT, "sub").nodeId(), "file");
        assertThat(errno(client.lookupReply(file.nodeId(), "x"))).isEqualTo(FsAbi.ENOTDIR);
        assertThat(errno(client.read(file.nodeId(), 77, 0, 10))).as("a handle never opened").isEqualTo(FsAbi.EBADF);
        assertThat(errno(client.release(file.nodeId(), 77, false))).isEqualTo(FsAbi.EBADF);
        long fh = client.open(file.nodeId(), FsAbi.O_RDONLY);
        assertThat(errno(client.write(file.nodeId(), fh, 0, "x".getBytes()))).as("a read-only handle").isEqualTo(FsAbi.EBADF);
        assertThat(errno(client.call(Fuse.FUSE_READDIR, ROOT, body().u64(fh).u64(0).u32(4096).u32(0).u64(0).u32(0).u32(0))))
                .as("a file's handle is no directory's").isEqualTo(FsAbi.EBADF);
    }

    @Test
    void aReadOnlyShareRefusesEveryChange() throws Exception {
        start(true, 1 << 10, 16);
        Entry sub = client.lookup(ROOT, "sub");
        Entry file = client.lookup(sub.nodeId(), "file");
        long fh = client.open(file.nodeId(), FsAbi.O_RDONLY);
        assertThat(client.read(file.nodeId(), fh, 0, 100).ok().payload()).isEqualTo("inside".getBytes());
        int[] refused = {
            errno(client.call(Fuse.FUSE_OPEN, file.nodeId(), body().u32(FsAbi.O_RDWR).u32(0))),
            errno(client.call(Fuse.FUSE_OPEN, file.nodeId(), body().u32(FsAbi.O_RDONLY | FsAbi.O_TRUNC).u32(0))),
            errno(client.call(Fuse.FUSE_CREATE, ROOT, body().u32(FsAbi.O_RDWR).u32(0644).u32(0).u32(0).name("new"))),
            errno(client.call(Fuse.FUSE_MKDIR, ROOT, body().u32(0755).u32(0).name("new"))),
            errno(client.call(Fuse.FUSE_MKNOD, ROOT, body().u32(FsAbi.S_IFREG | 0644).u32(0).u32(0).u32(0).name("new"))),
            errno(client.call(Fuse.FUSE_SYMLINK, ROOT, body().name("new").name("sub"))),
            errno(client.call(Fuse.FUSE_LINK, ROOT, body().u64(file.nodeId()).name("new"))),
            errno(client.call(Fuse.FUSE_UNLINK, sub.nodeId(), body().name("file"))),
            errno(client.call(Fuse.FUSE_RMDIR, ROOT, body().name("sub"))),
            errno(client.call(Fuse.FUSE_RENAME, ROOT, body().u64(ROOT).name("sub").name("new"))),
            errno(client.call(Fuse.FUSE_RENAME2, ROOT, body().u64(ROOT).u32(0).u32(0).name("sub").name("new"))),
            errno(client.setattr(file.nodeId(), Fuse.FATTR_SIZE, 0, 0, 0, 0)),
            errno(client.setattr(file.nodeId(), Fuse.FATTR_MODE, 0, 0, 0, 0777)),
            errno(client.write(file.nodeId(), fh, 0, "x".getBytes())),
            errno(client.call(Fuse.FUSE_FALLOCATE, file.nodeId(), body().u64(fh).u64(0).u64(4096).u32(0).u32(0))),
            errno(client.call(Fuse.FUSE_SETXATTR, file.nodeId(), body().u32(1).u32(0).name("user.x").bytes("v".getBytes()))),
            errno(client.call(Fuse.FUSE_REMOVEXATTR, file.nodeId(), body().name("user.x"))),
            errno(client.call(Fuse.FUSE_ACCESS, file.nodeId(), body().u32(2).u32(0))),
        };
        assertThat(refused).containsOnly(FsAbi.EROFS);
        assertThat(Files.readString(share.resolve("sub/file"))).isEqualTo("inside");
        try (var names = Files.list(share)) {
            assertThat(names.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder("to-secret", "to-etc", "up", "sub");
        }
    }

    @Test
    void malformedRequestsGetAnErrnoAndNothingElse() throws Exception {
        start(false, 1 << 10, 16);
        // A header shorter than fuse_in_header, a length past the buffer, a length shorter than the header.
        assertThat(client.raw(new byte[10])).isEqualTo(16);
        assertThat(client.parse(16, 0).errno()).isEqualTo(FsAbi.EINVAL);
        byte[] lookup = FuseTestClient.request(40 + 4, Fuse.FUSE_LOOKUP, 7, ROOT, body().name("sub").build());
        lookup[0] = (byte) 200;
        assertThat(client.raw(lookup)).isEqualTo(16);
        assertThat(client.parse(16, 7).errno()).isEqualTo(FsAbi.EINVAL);
        lookup[0] = 20;
        assertThat(client.raw(lookup)).isEqualTo(16);
        assertThat(client.parse(16, 7).errno()).isEqualTo(FsAbi.EINVAL);
        // A length that cuts the body: the name's NUL is past it.
        lookup[0] = 40 + 3;
        assertThat(client.raw(lookup)).isEqualTo(16);
        assertThat(client.parse(16, 7).errno()).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.call(Fuse.FUSE_LOOKUP, ROOT, "sub".getBytes()))).as("a name without NUL").isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.call(Fuse.FUSE_LOOKUP, ROOT, new byte[0]))).isEqualTo(FsAbi.EINVAL);
        for (int opcode : new int[] {0, 7, 19, 37, 39, 41, 47, 48, 99, 4096, -1}) {
            assertThat(errno(client.call(opcode, ROOT, new byte[16]))).as("opcode %d", opcode).isEqualTo(FsAbi.ENOSYS);
        }
        // Fixed parts cut short.
        assertThat(errno(client.call(Fuse.FUSE_READ, ROOT, new byte[39]))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.call(Fuse.FUSE_SETATTR, ROOT, new byte[87]))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.call(Fuse.FUSE_RENAME, ROOT, body().u64(ROOT).name("sub").build()))).isEqualTo(FsAbi.EINVAL);
        long malformedSoFar = client.server.malformedRequests();
        assertThat(malformedSoFar).isGreaterThanOrEqualTo(9);

        // Huge sizes and offsets.
        Entry file = client.lookup(client.lookup(ROOT, "sub").nodeId(), "file");
        long fh = client.open(file.nodeId(), FsAbi.O_RDWR);
        assertThat(errno(client.read(file.nodeId(), fh, 0, FuseServer.MAX_IO_BYTES + 1))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.read(file.nodeId(), fh, 0, -1))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.read(file.nodeId(), fh, -4096, 10))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.read(file.nodeId(), fh, Long.MAX_VALUE - 5, 10))).isEqualTo(FsAbi.EFBIG);
        assertThat(errno(client.call(Fuse.FUSE_WRITE, file.nodeId(), body().u64(fh).u64(0).u32(1 << 30).u32(0).u64(0).u32(0).u32(0)
                .bytes("abc".getBytes())))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.call(Fuse.FUSE_WRITE, file.nodeId(), body().u64(fh).u64(0).u32(100).u32(0).u64(0).u32(0).u32(0)
                .bytes("abc".getBytes())))).as("a size past the data").isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.call(Fuse.FUSE_FALLOCATE, file.nodeId(), body().u64(fh).u64(-1).u64(10)
                .u32(0).u32(0)))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.call(Fuse.FUSE_FALLOCATE, file.nodeId(), body().u64(fh).u64(1).u64(Long.MAX_VALUE).u32(0).u32(0))))
                .isEqualTo(FsAbi.EFBIG);
        assertThat(errno(client.call(Fuse.FUSE_GETXATTR, file.nodeId(), body().u32(-1).u32(0).name("user.x")))).isEqualTo(FsAbi.EINVAL);
        assertThat(errno(client.setattr(file.nodeId(), Fuse.FATTR_SIZE, 0, -1, 0, 0))).isEqualTo(FsAbi.EINVAL);
        client.send(Fuse.FUSE_BATCH_FORGET, 0, body().u32(-1).u32(0).u64(file.nodeId()).u64(1));
        assertThat(client.server.nodeCount()).as("a BATCH_FORGET that claims more than it holds drops nothing").isEqualTo(3);
        assertThat(Files.readString(share.resolve("sub/file"))).isEqualTo("inside");

        // A reply buffer too small for the reply.
        try (Arena arena = Arena.ofConfined()) {
            byte[] bytes = FuseTestClient.request(40 + 4, Fuse.FUSE_LOOKUP, 9, ROOT, body().name("sub").build());
            MemorySegment request = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_BYTE, bytes);
            MemorySegment small = arena.allocate(64);
            assertThat(client.server.handle(request, small)).isEqualTo(16);
            assertThat(small.asByteBuffer().order(ByteOrder.LITTLE_ENDIAN).getInt(4)).isEqualTo(-FsAbi.EINVAL);
            assertThat(client.server.handle(request, arena.allocate(8))).as("no room for even a header").isZero();
        }
    }

    @Test
    void initRefusesOtherMajorsAndNothingIsServedBeforeIt() throws Exception {
        client = new FuseTestClient(new FuseServer(share, false));
        assertThat(errno(client.lookupReply(ROOT, "sub"))).isEqualTo(FsAbi.EIO);
        assertThat(errno(client.call(Fuse.FUSE_INIT, 0, body().u32(8).u32(0).u32(0).u32(0)))).isEqualTo(FsAbi.EPROTO);
        assertThat(errno(client.call(Fuse.FUSE_INIT, 0, body().u32(6).u32(40).u32(0).u32(0)))).isEqualTo(FsAbi.EPROTO);
        assertThat(errno(client.call(Fuse.FUSE_INIT, 0, body().u32(7).u32(30).u32(0).u32(0)))).isEqualTo(FsAbi.EPROTO);
        assertThat(errno(client.call(Fuse.FUSE_INIT, 0, body().u32(7)))).isEqualTo(FsAbi.EINVAL);
        ByteBuffer old = client.call(Fuse.FUSE_INIT, 0, body().u32(7).u32(31).u32(4096).u32(0)).ok().body();
        assertThat(old.getInt(4)).isEqualTo(31);
        assertThat(client.lookup(ROOT, "sub").nodeId()).isGreaterThan(ROOT);
    }

    @Test
    void nodesAndHandlesAreBounded() throws Exception {
        start(false, 3, 1);
        Entry sub = client.lookup(ROOT, "sub");
        Entry file = client.lookup(sub.nodeId(), "file");
        assertThat(errno(client.lookupReply(ROOT, "to-etc"))).isEqualTo(FsAbi.ENFILE);
        assertThat(client.lookup(ROOT, "sub").nodeId()).as("a known file needs no new node").isEqualTo(sub.nodeId());
        long fh = client.open(file.nodeId(), FsAbi.O_RDONLY);
        assertThat(errno(client.call(Fuse.FUSE_OPEN, file.nodeId(), body().u32(FsAbi.O_RDONLY).u32(0)))).isEqualTo(FsAbi.ENFILE);
        assertThat(errno(client.call(Fuse.FUSE_OPENDIR, ROOT, body().u32(0).u32(0)))).isEqualTo(FsAbi.ENFILE);
        client.release(file.nodeId(), fh, false).ok();
        long dir = client.opendir(ROOT);
        // READDIRPLUS with no room for more nodes still lists every entry, the new ones not looked up.
        assertThat(client.readdir(ROOT, dir, 0, 4096, true)).hasSize(6).filteredOn(l -> l.nodeId() != 0).hasSize(1);
        assertThat(client.server.nodeCount()).isEqualTo(3);
        assertThat(new String(client.read(file.nodeId(), dir, 0, 10).payload(), StandardCharsets.US_ASCII)).isEmpty();
    }
}
