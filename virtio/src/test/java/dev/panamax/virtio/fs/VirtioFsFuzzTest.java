package dev.panamax.virtio.fs;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.sys.TmpfsTempDir;
import dev.panamax.virtio.FuzzedRequests;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.vm.GuestMemoryException;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * FUSE requests from a fuzzer's input ({@link FuzzedRequests} frames them), on the request queue of
 * a writable share: a session of INIT, LOOKUP, OPEN, READ, WRITE, READDIR, SETATTR, RENAME, xattrs
 * and the rest, with any node ids, file handles, offsets, sizes and names. A bad request is answered
 * with an errno; only a malformed chain may throw. And the guest's FUSE session as a snapshot keeps it
 * ({@link FuseServer#readSession}, then {@link FuseServer#restoreSession}), on a share with a link to
 * a directory outside it: a malformed session is refused, and no path a session names opens a file
 * outside the share.
 */
class VirtioFsFuzzTest {
    /** FALLOCATE reserves real disk blocks: a fuzzer's range is cut to this, so that it cannot fill the host's disk. */
    private static final long MAX_FALLOCATE_BYTES = 1 << 20;
    private static final int FALLOCATE_LENGTH_AT = FuseRequest.HEADER_BYTES + 16; // fh, offset, then length
    /** On tmpfs where there is one: each input makes and deletes a share of its own. */
    @TempDir(factory = TmpfsTempDir.class)
    static Path shares;

    /**
     * One device for all inputs (making one, with its 2 MiB of request buffers, cost more than most
     * inputs): the guest's nodes, open files and changes are state one input must not leave to the
     * next, so the driver resets the device after each input (which ends the guest's FUSE session)
     * and the share's files are made anew, in the same directory, with its mode as before.
     */
    @FuzzTest
    void requests(byte[] input) throws IOException {
        FuzzedRequests requests = requestsDevice();
        Files.setPosixFilePermissions(requestsShare, SHARE_MODE);
        Files.writeString(requestsShare.resolve("hello.txt"), "hello, virtio-fs\n", StandardCharsets.US_ASCII);
        Files.createDirectory(requestsShare.resolve("dir"));
        Files.write(requestsShare.resolve("dir").resolve("data"), new byte[8192]);
        Files.createSymbolicLink(requestsShare.resolve("link"), Path.of("hello.txt"));
        try {
            requests.serve(boundFallocate(input));
        } catch (VirtioProtocolException | GuestMemoryException refused) {
            // the documented answer to a request the device cannot answer with an errno
        } finally {
            requests.reset();
            try (Stream<Path> files = Files.list(requestsShare)) {
                for (Path file : files.toList()) deleteTree(file);
            }
        }
    }

    private static final java.util.Set<java.nio.file.attribute.PosixFilePermission> SHARE_MODE =
            java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x");
    private static Path requestsShare;
    private static FuzzedRequests requestsDevice;

    private static synchronized FuzzedRequests requestsDevice() throws IOException {
        if (requestsDevice == null) {
            requestsShare = Files.createDirectory(shares.resolve("share"));
            requestsDevice = new FuzzedRequests(new VirtioFs("fuzz", "fuzz", requestsShare, false, FuzzedRequests.QUEUE_SIZE), VirtioFs.REQUESTS);
        }
        return requestsDevice;
    }

    /**
     * A session read and, when accepted, restored, into one server (each restore ends the last session
     * first). Afterwards every node the server holds must be one of the share's own files.
     */
    @FuzzTest
    void session(byte[] input) throws IOException {
        FuseServer server = sessionServer();
        FuseServer.Session session;
        try {
            StateReader in = new StateReader(input, "session fuzz");
            session = server.readSession(in);
            in.end();
        } catch (StateFormatException refused) {
            return; // the documented answer to a malformed session
        }
        server.restoreSession(session);
        assertThat(server.handleCount()).isLessThanOrEqualTo(session.handles().size());
        for (FuseServer.SavedNode node : session.nodes()) {
            FuseTestClient.Reply attr = sessionClient.call(Fuse.FUSE_GETATTR, node.id(), FuseTestClient.body().u32(0).u32(0).u64(0));
            if (attr.errno() == 0) {
                long inode = attr.body().getLong(16); // fuse_attr_out: attr_valid, its nsec and a pad, then the inode
                assertThat(inode).as("node %d's file", node.id()).isIn(shareInodes);
            }
        }
    }

    private static FuseServer sessionServer;
    private static FuseTestClient sessionClient;
    /** The inodes of the session share's files (the link itself, not what it leads to). */
    private static final java.util.Set<Long> shareInodes = new java.util.HashSet<>();

    /** The share of {@link #session}: two files, a directory, a link to the directory beside the share with a file in it. */
    private static synchronized FuseServer sessionServer() throws IOException {
        if (sessionServer == null) {
            Path share = Files.createDirectory(shares.resolve("session-share"));
            Path outside = Files.createDirectory(shares.resolve("outside"));
            Files.writeString(outside.resolve("secret"), "outside the share\n");
            Files.writeString(share.resolve("hello.txt"), "hello\n");
            Files.createDirectory(share.resolve("dir"));
            Files.writeString(share.resolve("dir").resolve("data"), "data\n");
            Files.createSymbolicLink(share.resolve("out"), outside);
            try (Stream<Path> files = Files.walk(share)) {
                for (Path file : files.toList()) {
                    shareInodes.add((Long) Files.getAttribute(file, "unix:ino", java.nio.file.LinkOption.NOFOLLOW_LINKS));
                }
            }
            sessionServer = new FuseServer(share, false);
            sessionClient = new FuseTestClient(sessionServer);
        }
        return sessionServer;
    }

    @AfterAll
    static void closeDevices() {
        if (requestsDevice != null) {
            requestsDevice.close();
            requestsDevice = null;
        }
        if (sessionServer != null) {
            sessionServer.close();
            sessionClient.close();
            sessionServer = null;
        }
    }

    /** {@code input} with every FALLOCATE's length cut to {@link #MAX_FALLOCATE_BYTES}. */
    private static byte[] boundFallocate(byte[] input) {
        ByteBuffer bytes = ByteBuffer.wrap(input.clone()).order(ByteOrder.LITTLE_ENDIAN);
        for (FuzzedRequests.Frame frame : FuzzedRequests.frames(input)) {
            int at = frame.readableOffset();
            if (frame.readableLength() >= FALLOCATE_LENGTH_AT + 8 && bytes.getInt(at + 4) == Fuse.FUSE_FALLOCATE) {
                long length = bytes.getLong(at + FALLOCATE_LENGTH_AT);
                bytes.putLong(at + FALLOCATE_LENGTH_AT, Long.compareUnsigned(length, MAX_FALLOCATE_BYTES) > 0 ? MAX_FALLOCATE_BYTES : length);
            }
        }
        return bytes.array();
    }

    /** Deletes {@code file} and all below it; links are deleted, never followed. */
    private static void deleteTree(Path file) throws IOException {
        try (Stream<Path> paths = Files.walk(file)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
