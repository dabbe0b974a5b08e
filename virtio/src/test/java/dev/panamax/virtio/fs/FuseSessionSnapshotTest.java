package dev.panamax.virtio.fs;

import static dev.panamax.virtio.fs.FuseTestClient.body;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.sys.FsAbi;
import dev.panamax.virtio.fs.FuseTestClient.Entry;
import dev.panamax.virtio.fs.FuseTestClient.Listed;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A guest's FUSE session carried by a snapshot: saved by one server, read and restored by another
 * serving the same folder, the guest's node ids and open files work on; what cannot be found again is
 * left out, and a hostile session is refused before anything changes or reaches outside the share.
 */
class FuseSessionSnapshotTest {
    private static final long ROOT = Fuse.FUSE_ROOT_ID;
    private static final byte[] CONTENT = "kept across the snapshot\n".getBytes(StandardCharsets.US_ASCII);

    @TempDir
    Path dir;

    private final List<FuseTestClient> clients = new ArrayList<>();

    private FuseTestClient client(Path share, boolean readOnly) throws Exception {
        FuseTestClient client = new FuseTestClient(new FuseServer(share, readOnly));
        clients.add(client);
        return client;
    }

    @AfterEach
    void close() {
        for (FuseTestClient client : clients) {
            assertThat(client.server.internalErrors()).as("requests that met a bug").isZero();
            client.server.close();
            client.close();
        }
    }

    private static byte[] saved(FuseServer server, int expectedLeftOut) {
        StateWriter out = new StateWriter();
        assertThat(server.saveSession(out)).as("nodes left out of the snapshot").isEqualTo(expectedLeftOut);
        return out.toByteArray();
    }

    private static int restore(FuseServer server, byte[] session) {
        StateReader in = new StateReader(session, "test session");
        FuseServer.Session read = server.readSession(in);
        in.end();
        return server.restoreSession(read);
    }

    private Path share() throws Exception {
        Path share = Files.createDirectory(dir.resolve("share"));
        Files.createDirectories(share.resolve("a/b"));
        Files.write(share.resolve("a/b/f"), CONTENT);
        Files.writeString(share.resolve("g"), "g\n");
        return share;
    }

    @Test
    void theGuestsNodesAndOpenFilesWorkOnInTheServerTheSnapshotIsRestoredInto() throws Exception {
        Path share = share();
        FuseTestClient before = client(share, false);
        before.init().ok();
        Entry a = before.lookup(ROOT, "a");
        Entry b = before.lookup(a.nodeId(), "b");
        Entry f = before.lookup(b.nodeId(), "f");
        long reading = before.open(f.nodeId(), FsAbi.O_RDONLY);
        long listing = before.opendir(a.nodeId());
        long[] made = before.create(ROOT, "new", FsAbi.O_RDWR | FsAbi.O_TRUNC, 0644);
        byte[] session = saved(before.server, 0);

        FuseTestClient after = client(share, false);
        assertThat(restore(after.server, session)).as("left out at the restore").isZero();
        assertThat(after.server.nodeCount()).isEqualTo(before.server.nodeCount());
        assertThat(after.server.handleCount()).isEqualTo(3);
        assertThat(after.init().errno()).as("the session had started: a second INIT").isEqualTo(FsAbi.EINVAL);
        assertThat(after.read(f.nodeId(), reading, 0, 4096).ok().payload()).isEqualTo(CONTENT);
        assertThat(after.readdir(a.nodeId(), listing, 0, 4096, false)).extracting(Listed::name).contains("b");
        byte[] hello = "written after the restore".getBytes(StandardCharsets.US_ASCII);
        after.write(made[0], made[1], 0, hello).ok();
        assertThat(Files.readAllBytes(share.resolve("new"))).isEqualTo(hello);
        assertThat(after.call(Fuse.FUSE_GETATTR, b.nodeId(), body().u32(0).u32(0).u64(0)).ok().payload()).isNotEmpty();
        assertThat(after.lookup(a.nodeId(), "b").nodeId()).as("a known file keeps its node").isEqualTo(b.nodeId());
        long g = after.lookup(ROOT, "g").nodeId();
        assertThat(g).as("a new node's id is none the guest holds").isNotIn(a.nodeId(), b.nodeId(), f.nodeId(), made[0]);
        long another = after.open(g, FsAbi.O_RDONLY);
        assertThat(another).as("a new handle is none the guest holds").isNotIn(reading, listing, made[1]);
    }

    @Test
    void aSessionThatNeverStartedIsRestoredAsOne() throws Exception {
        Path share = share();
        FuseTestClient before = client(share, false);
        FuseTestClient after = client(share, false);
        assertThat(restore(after.server, saved(before.server, 0))).isZero();
        after.init().ok();
        assertThat(after.lookup(ROOT, "g").nodeId()).isGreaterThan(ROOT);
    }

    @Test
    void aFileDeletedWhileOpenIsLeftOutAndTheGuestGetsEbadfForIt() throws Exception {
        Path share = share();
        FuseTestClient before = client(share, false);
        before.init().ok();
        Entry g = before.lookup(ROOT, "g");
        long open = before.open(g.nodeId(), FsAbi.O_RDONLY);
        Entry a = before.lookup(ROOT, "a");
        Files.delete(share.resolve("g"));
        byte[] session = saved(before.server, 1);

        FuseTestClient after = client(share, false);
        assertThat(restore(after.server, session)).isZero();
        assertThat(after.read(g.nodeId(), open, 0, 10).errno()).isEqualTo(FsAbi.EBADF);
        assertThat(after.call(Fuse.FUSE_GETATTR, g.nodeId(), body().u32(0).u32(0).u64(0)).errno()).isEqualTo(FsAbi.EBADF);
        assertThat(after.call(Fuse.FUSE_GETATTR, a.nodeId(), body().u32(0).u32(0).u64(0)).errno()).isZero();
    }

    @Test
    void aFileGoneOrReplacedByASymbolicLinkBeforeTheRestoreIsLeftOutWithItsOpenFiles() throws Exception {
        Path share = share();
        Path outside = Files.createDirectory(dir.resolve("outside"));
        Files.writeString(outside.resolve("f"), "outside the share");
        FuseTestClient before = client(share, false);
        before.init().ok();
        Entry a = before.lookup(ROOT, "a");
        Entry b = before.lookup(a.nodeId(), "b");
        Entry f = before.lookup(b.nodeId(), "f");
        long open = before.open(f.nodeId(), FsAbi.O_RDONLY);
        Entry g = before.lookup(ROOT, "g");
        byte[] session = saved(before.server, 0);
        Files.delete(share.resolve("g"));
        Files.delete(share.resolve("a/b/f"));
        Files.delete(share.resolve("a/b"));
        Files.createSymbolicLink(share.resolve("a/b"), outside); // a/b is no directory now, and a/b/f would lead out of the share

        FuseTestClient after = client(share, false);
        assertThat(restore(after.server, session)).as("b, f, f's open file and g").isEqualTo(4);
        assertThat(after.read(f.nodeId(), open, 0, 100).errno()).isEqualTo(FsAbi.EBADF);
        assertThat(after.call(Fuse.FUSE_GETATTR, g.nodeId(), body().u32(0).u32(0).u64(0)).errno()).isEqualTo(FsAbi.EBADF);
        assertThat(after.server.nodeCount()).as("the root and a").isEqualTo(2);
    }

    /** A session written by hand, as a hostile snapshot could have it. */
    private static byte[] session(boolean started, long nextNode, long nextFh, Consumer<StateWriter> nodes, Consumer<StateWriter> handles) {
        StateWriter out = new StateWriter().bool(started).i64(nextNode).i64(nextFh);
        nodes.accept(out);
        handles.accept(out);
        return out.toByteArray();
    }

    private static Consumer<StateWriter> nodes(long id, String path, long lookups) {
        return nodes(id, path, FsAbi.S_IFREG, lookups);
    }

    private static Consumer<StateWriter> nodes(long id, String path, int type, long lookups) {
        return out -> out.i32(1).i64(id).bytes(path.getBytes(StandardCharsets.UTF_8)).i32(type).i64(lookups);
    }

    private static Consumer<StateWriter> handle(long fh, long node, boolean directory, int flags) {
        return out -> out.i32(1).i64(fh).i64(node).bool(directory).i32(flags);
    }

    private static final Consumer<StateWriter> NONE = out -> out.i32(0);

    private void refused(FuseServer server, byte[] session, String problem) {
        assertThatThrownBy(() -> server.readSession(new StateReader(session, "hostile session")))
                .isInstanceOf(StateFormatException.class).hasMessageContaining(problem);
    }

    @Test
    void aHostileSessionIsRefusedBeforeAnythingChanges() throws Exception {
        Path share = share();
        FuseServer server = client(share, false).server;
        FuseServer readOnly = client(share, true).server;
        String badPath = "is not names of the share";
        for (String path : new String[] {"..", "a/../..", "/etc", "a//b", "a/", "", ".", "a/./b", "a\0b"}) {
            refused(server, session(true, 10, 10, nodes(2, path, 1), NONE), badPath);
        }
        refused(server, session(true, 10, 10, nodes(1, "a", 1), NONE), "root's, repeated, or not below");
        refused(server, session(true, 10, 10, nodes(10, "a", 1), NONE), "root's, repeated, or not below");
        refused(server, session(true, 10, 10, out -> {
            out.i32(2).i64(2).bytes("a".getBytes(StandardCharsets.UTF_8)).i32(FsAbi.S_IFDIR).i64(1);
            out.i64(2).bytes("g".getBytes(StandardCharsets.UTF_8)).i32(FsAbi.S_IFREG).i64(1);
        }, NONE), "root's, repeated, or not below");
        refused(server, session(true, 10, 10, nodes(2, "a", 0, 1), NONE), "which is no file type");
        refused(server, session(true, 10, 10, nodes(2, "a", FsAbi.S_IFDIR | 0755, 1), NONE), "which is no file type");
        refused(server, session(true, 10, 10, nodes(2, "a", 0), NONE), "lookup count 0");
        refused(server, session(false, 10, 10, nodes(2, "a", 1), NONE), "never started");
        refused(server, session(true, 1, 10, NONE, NONE), "out of range");
        refused(server, session(true, Long.MAX_VALUE, 10, NONE, NONE), "out of range");
        refused(server, session(true, 10, 0, NONE, NONE), "out of range");
        refused(server, session(true, 10, 10, NONE, handle(3, 5, false, FsAbi.O_RDONLY)), "which the snapshot does not have");
        refused(server, session(true, 10, 10, nodes(2, "g", 1), handle(10, 2, false, FsAbi.O_RDONLY)), "repeated or not between");
        refused(server, session(true, 10, 10, nodes(2, "g", 1), handle(1, 2, false, FsAbi.O_RDWR | FsAbi.O_TRUNC)),
                "which no open file of a share has");
        refused(server, session(true, 10, 10, nodes(2, "g", 1), handle(1, 2, false, FsAbi.O_ACCMODE)), "which no open file of a share has");
        refused(server, session(true, 10, 10, nodes(2, "a", FsAbi.S_IFDIR, 1), handle(1, 2, true, FsAbi.O_RDWR)),
                "which no open file of a share has");
        refused(readOnly, session(true, 10, 10, nodes(2, "g", 1), handle(1, 2, false, FsAbi.O_WRONLY)), "the share is read-only");
        refused(server, session(true, 10, 10, out -> out.i32(FuseServer.DEFAULT_MAX_NODES), NONE), "more than the");
        assertThat(server.nodeCount()).as("nothing read changed the server").isEqualTo(1);
    }

    @Test
    void aSessionOpensNothingOutsideTheShareWhateverItsPathsSay() throws Exception {
        Path share = share();
        Path outside = Files.createDirectory(dir.resolve("outside"));
        Files.writeString(outside.resolve("secret"), "secret");
        Files.createSymbolicLink(share.resolve("out"), outside);
        FuseTestClient after = client(share, false);
        byte[] session = session(true, 10, 10, nodes(2, "out/secret", 1), handle(1, 2, false, FsAbi.O_RDONLY));
        assertThat(restore(after.server, session)).as("the node and its open file").isEqualTo(2);
        assertThat(after.read(2, 1, 0, 100).errno()).isEqualTo(FsAbi.EBADF);
        // The link itself is a node of the share, served as a link, never followed: it may be restored, and opened it is not.
        assertThat(restore(after.server, session(true, 10, 10, nodes(2, "out", FsAbi.S_IFLNK, 1), handle(1, 2, false, FsAbi.O_RDONLY))))
                .as("the link's open file").isEqualTo(1);
        assertThat(after.server.nodeCount()).as("the root and the link").isEqualTo(2);
        assertThat(after.read(2, 1, 0, 100).errno()).isEqualTo(FsAbi.EBADF);
    }
}
