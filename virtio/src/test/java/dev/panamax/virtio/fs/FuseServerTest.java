package dev.panamax.virtio.fs;

import static dev.panamax.virtio.fs.FuseTestClient.body;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.sys.FsAbi;
import dev.panamax.virtio.fs.FuseTestClient.Entry;
import dev.panamax.virtio.fs.FuseTestClient.Listed;
import dev.panamax.virtio.fs.FuseTestClient.Reply;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** A whole FUSE session against a temporary share, as Linux's client would drive it. */
class FuseServerTest {
    private static final long ROOT = Fuse.FUSE_ROOT_ID;
    private static final byte[] HELLO = "hello, guest".getBytes(StandardCharsets.US_ASCII);

    @TempDir
    Path share;

    private FuseTestClient client;

    private FuseTestClient start(boolean readOnly) throws Exception {
        client = new FuseTestClient(new FuseServer(share, readOnly));
        client.init().ok();
        return client;
    }

    @AfterEach
    void close() {
        if (client != null) {
            assertThat(client.server.internalErrors()).as("requests that met a bug").isZero();
            client.server.close();
            client.close();
        }
    }

    @Test
    void initNegotiatesSevenThirtyOne() throws Exception {
        client = new FuseTestClient(new FuseServer(share, false));
        ByteBuffer b = client.init().ok().body();
        assertThat(b.getInt()).isEqualTo(7);
        assertThat(b.getInt()).isEqualTo(31);
        assertThat(b.getInt()).as("max_readahead").isEqualTo(128 * 1024);
        int flags = b.getInt();
        assertThat(flags & Fuse.FUSE_DO_READDIRPLUS).isNotZero();
        assertThat(flags & (1 << 16)).as("no writeback cache").isZero();
        b.getShort();
        b.getShort();
        assertThat(b.getInt()).as("max_write").isEqualTo(FuseServer.ADVERTISED_IO_PAGES * 4096);
        assertThat(b.getInt()).as("time_gran").isEqualTo(1);
        assertThat(b.getShort()).as("max_pages").isEqualTo((short) FuseServer.ADVERTISED_IO_PAGES);
        assertThat(client.init().errno()).as("a second INIT").isEqualTo(FsAbi.EINVAL);
    }

    @Test
    void whatTheGuestMakesBelongsToItsCallerAndInASetgidDirectoryToTheDirectorysGroup() throws Exception {
        client = new FuseTestClient(new FuseServer(share, false, CacheMode.AUTO, 100, 100, true));
        client.init().ok();
        client.callerUid = 1234;
        client.callerGid = 5678;
        long[] created = client.create(ROOT, "file", FsAbi.O_RDWR | FsAbi.O_EXCL, FsAbi.S_IFREG | 02755);
        client.release(created[0], created[1], false).ok();
        client.call(Fuse.FUSE_MKDIR, ROOT, body().u32(02775).u32(0).name("dir")).ok();
        client.call(Fuse.FUSE_MKNOD, ROOT, body().u32(FsAbi.S_IFREG | 0600).u32(0).u32(0).u32(0).name("node")).ok();
        client.call(Fuse.FUSE_SYMLINK, ROOT, body().name("link").name("file")).ok();
        for (String name : List.of("file", "dir", "node", "link")) {
            assertThat(owner(share.resolve(name))).as(name).isEqualTo("1234:5678");
        }
        assertThat(Files.getAttribute(share.resolve("file"), "unix:mode")).as("the mode given after the owner, its setgid bit kept")
                .isEqualTo(FsAbi.S_IFREG | 02755);

        long dir = client.lookup(ROOT, "dir").nodeId();
        client.callerUid = 42;
        client.callerGid = 43;
        client.call(Fuse.FUSE_MKDIR, dir, body().u32(0755).u32(0).name("inner")).ok();
        assertThat(owner(share.resolve("dir/inner"))).as("in a setgid directory").isEqualTo("42:5678");
        client.call(Fuse.FUSE_LINK, dir, body().u64(created[0]).name("hard")).ok();
        assertThat(owner(share.resolve("dir/hard"))).as("a hard link is the file it links").isEqualTo("1234:5678");
    }

    @Test
    void aServerThatMayNotGiveFilesAwayKeepsThemItsOwn() throws Exception {
        client = new FuseTestClient(new FuseServer(share, false, CacheMode.AUTO, 100, 100, false));
        client.init().ok();
        client.callerUid = 1234;
        client.callerGid = 5678;
        client.call(Fuse.FUSE_MKDIR, ROOT, body().u32(0755).u32(0).name("dir")).ok();
        assertThat(owner(share.resolve("dir"))).isEqualTo(owner(share));
    }

    private static String owner(Path file) throws java.io.IOException {
        return Files.getAttribute(file, "unix:uid", java.nio.file.LinkOption.NOFOLLOW_LINKS) + ":"
                + Files.getAttribute(file, "unix:gid", java.nio.file.LinkOption.NOFOLLOW_LINKS);
    }

    /** Every field of fuse_attr, in LOOKUP's fuse_entry_out and GETATTR's fuse_attr_out, is the host's stat of the file. */
    @Test
    void theAttributesOfLookupAndGetattrAreTheHostsFieldByField() throws Exception {
        Path file = Files.write(share.resolve("f"), new byte[5000]);
        Files.createLink(share.resolve("hard"), file);
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-r-----"));
        Files.setLastModifiedTime(file, FileTime.from(java.time.Instant.ofEpochSecond(1_700_000_000L, 123_456_789)));
        try { // an owner and group apart, where this user may give files away (root, as CI runs), so a swap shows
            Files.setAttribute(file, "unix:uid", 1234, java.nio.file.LinkOption.NOFOLLOW_LINKS);
            Files.setAttribute(file, "unix:gid", 5678, java.nio.file.LinkOption.NOFOLLOW_LINKS);
        } catch (java.nio.file.FileSystemException e) {
            // not root: the file stays the user's
        }
        start(true);
        ByteBuffer entry = client.lookupReply(ROOT, "f").ok().body();
        long node = entry.getLong();
        entry.position(40); // nodeid, generation, entry_valid, attr_valid, their nanoseconds
        ByteBuffer attrOut = client.call(Fuse.FUSE_GETATTR, node, body().u32(0).u32(0).u64(0)).ok().body();
        attrOut.position(16); // attr_valid, attr_valid_nsec, dummy
        for (ByteBuffer attr : List.of(entry, attrOut)) {
            java.util.Map<String, Object> host = Files.readAttributes(file, "unix:*", java.nio.file.LinkOption.NOFOLLOW_LINKS);
            FileTime atime = (FileTime) host.get("lastAccessTime");
            FileTime ctime = (FileTime) host.get("ctime");
            assertThat(attr.getLong()).as("ino").isEqualTo(host.get("ino"));
            assertThat(attr.getLong()).as("size").isEqualTo(5000);
            assertThat(attr.getLong()).as("blocks").isEqualTo(blocks(file));
            assertThat(attr.getLong()).as("atime").isEqualTo(atime.toInstant().getEpochSecond());
            assertThat(attr.getLong()).as("mtime").isEqualTo(1_700_000_000L);
            assertThat(attr.getLong()).as("ctime").isEqualTo(ctime.toInstant().getEpochSecond());
            assertThat(attr.getInt()).as("atimensec").isEqualTo(atime.toInstant().getNano());
            assertThat(attr.getInt()).as("mtimensec").isEqualTo(123_456_789);
            assertThat(attr.getInt()).as("ctimensec").isEqualTo(ctime.toInstant().getNano());
            assertThat(attr.getInt()).as("mode").isEqualTo(FsAbi.S_IFREG | 0640);
            assertThat(attr.getInt()).as("nlink").isEqualTo(2);
            assertThat(attr.getInt()).as("uid").isEqualTo(host.get("uid"));
            assertThat(attr.getInt()).as("gid").isEqualTo(host.get("gid"));
            assertThat(attr.getInt()).as("rdev").isZero();
            assertThat(attr.getInt()).as("blksize").isEqualTo(blockSize(file));
            assertThat(attr.getInt()).as("flags").isZero();
        }
    }

    /** st_blocks and st_blksize, which NIO does not give: from stat(1). */
    private static long blocks(Path file) throws Exception {
        return Long.parseLong(stat(file, "%b"));
    }

    private static int blockSize(Path file) throws Exception {
        return Integer.parseInt(stat(file, "%o"));
    }

    private static String stat(Path file, String format) throws Exception {
        Process p = new ProcessBuilder("stat", "-c", format, file.toString()).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII).trim();
        assertThat(p.waitFor()).isZero();
        return out;
    }

    @Test
    void aWholeSession() throws Exception {
        start(false);
        assertThat(client.lookupReply(ROOT, "a.txt").errno()).isEqualTo(FsAbi.ENOENT);
        long[] created = client.create(ROOT, "a.txt", FsAbi.O_RDWR | FsAbi.O_EXCL, FsAbi.S_IFREG | 0644);
        long a = created[0];
        long fh = created[1];
        assertThat(ByteBuffer.wrap(client.write(a, fh, 0, HELLO).ok().payload()).order(java.nio.ByteOrder.LITTLE_ENDIAN).getInt())
                .isEqualTo(HELLO.length);
        assertThat(client.read(a, fh, 0, 4096).ok().payload()).isEqualTo(HELLO);
        assertThat(client.read(a, fh, 7, 5).ok().payload()).isEqualTo("guest".getBytes(StandardCharsets.US_ASCII));
        assertThat(client.read(a, fh, 1000, 10).ok().payload()).as("past the end").isEmpty();
        client.call(Fuse.FUSE_FLUSH, a, body().u64(fh).u32(0).u32(0).u64(0)).ok();
        client.call(Fuse.FUSE_FSYNC, a, body().u64(fh).u32(Fuse.FUSE_FSYNC_FDATASYNC).u32(0)).ok();
        client.call(Fuse.FUSE_FALLOCATE, a, body().u64(fh).u64(0).u64(1 << 16).u32(0).u32(0)).ok();
        long data = client.call(Fuse.FUSE_LSEEK, a, body().u64(fh).u64(0).u32(FsAbi.SEEK_DATA).u32(0)).ok().body().getLong();
        assertThat(data).isZero();
        client.release(a, fh, false).ok();
        assertThat(Files.readAllBytes(share.resolve("a.txt"))).startsWith(HELLO).hasSize(1 << 16);

        Entry again = client.lookup(ROOT, "a.txt");
        assertThat(again.nodeId()).as("the same file is the same node").isEqualTo(a);
        assertThat(again.size()).isEqualTo(1 << 16);
        ByteBuffer attr = client.call(Fuse.FUSE_GETATTR, a, body().u32(0).u32(0).u64(0)).ok().body();
        attr.getLong();
        attr.getInt();
        attr.getInt();
        assertThat(attr.getLong()).as("ino").isEqualTo(again.inode());

        int valid = Fuse.FATTR_SIZE | Fuse.FATTR_MODE | Fuse.FATTR_MTIME;
        client.setattr(a, valid, 0, 5, 1_000_000, 0600).ok();
        assertThat(Files.readString(share.resolve("a.txt"))).isEqualTo("hello");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(share.resolve("a.txt")))).isEqualTo("rw-------");
        assertThat(Files.getLastModifiedTime(share.resolve("a.txt"))).isEqualTo(FileTime.fromMillis(1_000_000_000L));

        Entry d = FuseTestClient.entry(client.call(Fuse.FUSE_MKDIR, ROOT, body().u32(0755).u32(022).name("d")).ok().body());
        assertThat(d.mode() & FsAbi.S_IFMT).isEqualTo(FsAbi.S_IFDIR);
        Entry s = FuseTestClient.entry(client.call(Fuse.FUSE_SYMLINK, ROOT, body().name("s").name("a.txt")).ok().body());
        assertThat(client.call(Fuse.FUSE_READLINK, s.nodeId(), new byte[0]).ok().payload()).isEqualTo("a.txt".getBytes());
        Entry hard = FuseTestClient.entry(client.call(Fuse.FUSE_LINK, d.nodeId(), body().u64(a).name("hard")).ok().body());
        assertThat(hard.nodeId()).isEqualTo(a);
        assertThat(Files.isSameFile(share.resolve("a.txt"), share.resolve("d/hard"))).isTrue();
        Entry m = FuseTestClient.entry(client.call(Fuse.FUSE_MKNOD, ROOT, body().u32(FsAbi.S_IFREG | 0644).u32(0).u32(0).u32(0)
                .name("m")).ok().body());
        assertThat(m.mode() & FsAbi.S_IFMT).isEqualTo(FsAbi.S_IFREG);

        long dir = client.opendir(ROOT);
        List<Listed> listed = client.readdir(ROOT, dir, 0, 4096, true);
        assertThat(listed).extracting(Listed::name).containsExactlyInAnyOrder(".", "..", "a.txt", "d", "s", "m");
        assertThat(listed).filteredOn(l -> l.name().equals("a.txt")).extracting(Listed::nodeId).containsExactly(a);
        assertThat(listed).filteredOn(l -> l.name().startsWith(".")).extracting(Listed::nodeId).containsOnly(0L);
        // READDIR from the middle goes on after the entry given, and a small size takes fewer entries.
        List<Listed> plain = client.readdir(ROOT, dir, 0, 4096, false);
        assertThat(plain).hasSize(6);
        assertThat(client.readdir(ROOT, dir, plain.get(2).nextOffset(), 4096, false)).containsExactlyElementsOf(plain.subList(3, 6));
        assertThat(client.readdir(ROOT, dir, 0, 40, false)).hasSize(1);
        client.release(ROOT, dir, true).ok();

        client.call(Fuse.FUSE_RENAME, ROOT, body().u64(d.nodeId()).name("a.txt").name("b.txt")).ok();
        assertThat(client.lookup(d.nodeId(), "b.txt").nodeId()).isEqualTo(a);
        assertThat(client.call(Fuse.FUSE_RENAME2, d.nodeId(), body().u64(d.nodeId()).u32(FsAbi.RENAME_NOREPLACE).u32(0)
                .name("b.txt").name("hard")).errno()).isEqualTo(FsAbi.EEXIST);
        client.call(Fuse.FUSE_RENAME2, d.nodeId(), body().u64(ROOT).u32(FsAbi.RENAME_EXCHANGE).u32(0).name("b.txt").name("m")).ok();
        assertThat(Files.size(share.resolve("m"))).isEqualTo(5);
        assertThat(client.call(Fuse.FUSE_RMDIR, ROOT, body().name("d")).errno()).isEqualTo(FsAbi.ENOTEMPTY);
        client.call(Fuse.FUSE_UNLINK, d.nodeId(), body().name("b.txt")).ok();
        client.call(Fuse.FUSE_UNLINK, d.nodeId(), body().name("hard")).ok();
        client.call(Fuse.FUSE_RMDIR, ROOT, body().name("d")).ok();
        assertThat(share.resolve("d")).doesNotExist();

        ByteBuffer statfs = client.call(Fuse.FUSE_STATFS, ROOT, new byte[0]).ok().body();
        assertThat(statfs.getLong(44)).as("namelen and bsize").isNotZero();
        client.call(Fuse.FUSE_ACCESS, ROOT, body().u32(2).u32(0)).ok();
        xattrs(m.nodeId());

        // Each reply that made a node counted a lookup; FORGET and BATCH_FORGET give them back.
        int before = client.server.nodeCount();
        client.send(Fuse.FUSE_FORGET, s.nodeId(), body().u64(2)); // LOOKUP via READDIRPLUS and SYMLINK
        assertThat(client.server.nodeCount()).isEqualTo(before - 1);
        assertThat(client.call(Fuse.FUSE_GETATTR, s.nodeId(), body().u32(0).u32(0).u64(0)).errno()).isEqualTo(FsAbi.EBADF);
        client.send(Fuse.FUSE_BATCH_FORGET, 0, body().u32(2).u32(0).u64(a).u64(1000).u64(m.nodeId()).u64(1000));
        assertThat(client.server.nodeCount()).isEqualTo(before - 3);
        client.call(Fuse.FUSE_DESTROY, 0, new byte[0]).ok();
        assertThat(client.server.nodeCount()).as("only the root is left").isEqualTo(1);
        assertThat(client.server.handleCount()).isZero();
        assertThat(client.lookupReply(ROOT, "m").errno()).as("after DESTROY, INIT again").isEqualTo(FsAbi.EIO);
        assertThat(client.server.malformedRequests()).isZero();
    }

    @Test
    void newFilesGetTheModeTheGuestAskedNotTheHostUmask() throws Exception {
        start(false);
        long[] created = client.create(ROOT, "open", FsAbi.O_RDWR | FsAbi.O_EXCL, FsAbi.S_IFREG | 0666);
        client.release(created[0], created[1], false).ok();
        client.call(Fuse.FUSE_MKDIR, ROOT, body().u32(0777).u32(0).name("dir")).ok();
        client.call(Fuse.FUSE_MKNOD, ROOT, body().u32(FsAbi.S_IFREG | 0662).u32(0).u32(0).u32(0).name("node")).ok();
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(share.resolve("open")))).isEqualTo("rw-rw-rw-");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(share.resolve("dir")))).isEqualTo("rwxrwxrwx");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(share.resolve("node")))).isEqualTo("rw-rw--w-");
        // CREATE of an existing file without O_EXCL opens it and leaves its mode alone.
        Files.setPosixFilePermissions(share.resolve("open"), PosixFilePermissions.fromString("r--------"));
        long[] again = client.create(ROOT, "open", FsAbi.O_RDONLY, FsAbi.S_IFREG | 0666);
        assertThat(again[0]).isEqualTo(created[0]);
        client.release(again[0], again[1], false).ok();
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(share.resolve("open")))).isEqualTo("r--------");
    }

    @ParameterizedTest
    @EnumSource(CacheMode.class)
    void theCacheModeSetsTheValidityOfEveryEntryAndAttributesAndTheOpenFlagsOfFiles(CacheMode mode) throws Exception {
        // virtiofsd's cache modes: entry_valid and attr_valid in seconds, and fuse_open_out's open_flags for files.
        long valid = switch (mode) {
            case AUTO -> 1;
            case NONE -> 0;
            case ALWAYS -> 86_400;
        };
        int fileFlags = switch (mode) {
            case AUTO -> 0;
            case NONE -> Fuse.FOPEN_DIRECT_IO;
            case ALWAYS -> Fuse.FOPEN_KEEP_CACHE;
        };
        Files.write(share.resolve("f"), HELLO);
        Files.createDirectory(share.resolve("d"));
        client = new FuseTestClient(new FuseServer(share, false, mode));
        client.init().ok();

        Entry f = client.lookup(ROOT, "f");
        assertThat(f.entryValidSeconds()).as("LOOKUP entry_valid").isEqualTo(valid);
        assertThat(f.attrValidSeconds()).as("LOOKUP attr_valid").isEqualTo(valid);
        ByteBuffer attr = client.call(Fuse.FUSE_GETATTR, f.nodeId(), body().u32(0).u32(0).u64(0)).ok().body();
        assertThat(attr.getLong()).as("GETATTR attr_valid").isEqualTo(valid);
        assertThat(attr.getInt()).as("GETATTR attr_valid_nsec").isZero();
        ByteBuffer changed = client.setattr(f.nodeId(), Fuse.FATTR_MODE, 0, 0, 0, 0644).ok().body();
        assertThat(changed.getLong()).as("SETATTR attr_valid").isEqualTo(valid);

        ByteBuffer open = client.call(Fuse.FUSE_OPEN, f.nodeId(), body().u32(FsAbi.O_RDONLY).u32(0)).ok().body();
        long fh = open.getLong();
        assertThat(open.getInt()).as("OPEN open_flags").isEqualTo(fileFlags);
        assertThat(client.read(f.nodeId(), fh, 0, 4096).ok().payload()).isEqualTo(HELLO);
        client.release(f.nodeId(), fh, false).ok();

        ByteBuffer create = client.call(Fuse.FUSE_CREATE, ROOT, body().u32(FsAbi.O_RDWR | FsAbi.O_EXCL).u32(FsAbi.S_IFREG | 0644)
                .u32(022).u32(0).name("new")).ok().body();
        Entry created = FuseTestClient.entry(create);
        assertThat(created.entryValidSeconds()).as("CREATE entry_valid").isEqualTo(valid);
        assertThat(created.attrValidSeconds()).as("CREATE attr_valid").isEqualTo(valid);
        long createdFh = create.getLong();
        assertThat(create.getInt()).as("CREATE open_flags").isEqualTo(fileFlags);
        client.release(created.nodeId(), createdFh, false).ok();
        Entry dir = FuseTestClient.entry(client.call(Fuse.FUSE_MKDIR, ROOT, body().u32(0755).u32(022).name("made")).ok().body());
        assertThat(dir.entryValidSeconds()).as("MKDIR entry_valid").isEqualTo(valid);

        ByteBuffer opendir = client.call(Fuse.FUSE_OPENDIR, ROOT, body().u32(0).u32(0)).ok().body();
        long dh = opendir.getLong();
        assertThat(opendir.getInt()).as("OPENDIR open_flags: directories as in every mode").isZero();
        List<Listed> listed = client.readdir(ROOT, dh, 0, 4096, true);
        assertThat(listed).filteredOn(l -> !l.name().startsWith(".")).extracting(Listed::name)
                .containsExactlyInAnyOrder("f", "d", "new", "made");
        assertThat(listed).filteredOn(l -> !l.name().startsWith(".")).extracting(Listed::entry)
                .allSatisfy(e -> assertThat(new long[] {e.entryValidSeconds(), e.attrValidSeconds()}).as("READDIRPLUS validity")
                        .containsExactly(valid, valid));
        client.release(ROOT, dh, true).ok();
    }

    private void xattrs(long node) {
        byte[] name = "user.panamax".getBytes(StandardCharsets.US_ASCII);
        Reply set = client.call(Fuse.FUSE_SETXATTR, node, body().u32(2).u32(0).name("user.panamax").bytes("v1".getBytes()));
        if (set.errno() == FsAbi.EOPNOTSUPP) {
            return; // a file system without user xattrs (tmpfs before 6.6)
        }
        set.ok();
        assertThat(client.call(Fuse.FUSE_GETXATTR, node, body().u32(0).u32(0).name("user.panamax")).ok().body().getInt()).isEqualTo(2);
        assertThat(client.call(Fuse.FUSE_GETXATTR, node, body().u32(64).u32(0).name("user.panamax")).ok().payload())
                .isEqualTo("v1".getBytes());
        assertThat(client.call(Fuse.FUSE_GETXATTR, node, body().u32(1).u32(0).name("user.panamax")).errno()).isEqualTo(FsAbi.ERANGE);
        assertThat(new String(client.call(Fuse.FUSE_LISTXATTR, node, body().u32(256).u32(0)).ok().payload(), StandardCharsets.US_ASCII))
                .contains(new String(name, StandardCharsets.US_ASCII));
        client.call(Fuse.FUSE_REMOVEXATTR, node, body().name("user.panamax")).ok();
        assertThat(client.call(Fuse.FUSE_GETXATTR, node, body().u32(0).u32(0).name("user.panamax")).errno()).isEqualTo(FsAbi.ENODATA);
    }
}
