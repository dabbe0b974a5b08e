package dev.panamax.virtio.fs;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.virtio.FuzzedRequests;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.vm.GuestMemoryException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;

/**
 * FUSE requests from a fuzzer's input ({@link FuzzedRequests} frames them), on the request queue of
 * a writable share: a session of INIT, LOOKUP, OPEN, READ, WRITE, READDIR, SETATTR, RENAME, xattrs
 * and the rest, with any node ids, file handles, offsets, sizes and names. A bad request is answered
 * with an errno; only a malformed chain may throw.
 */
class VirtioFsFuzzTest {
    /** FALLOCATE reserves real disk blocks: a fuzzer's range is cut to this, so that it cannot fill the host's disk. */
    private static final long MAX_FALLOCATE_BYTES = 1 << 20;
    private static final int FALLOCATE_LENGTH_AT = FuseRequest.HEADER_BYTES + 16; // fh, offset, then length
    @TempDir
    static Path shares;

    /** A device and a share for each input: the guest's nodes, open files and changes are state one input must not leave to the next. */
    @FuzzTest
    void requests(byte[] input) throws IOException {
        Path share = Files.createDirectory(shares.resolve("share"));
        try {
            Files.writeString(share.resolve("hello.txt"), "hello, virtio-fs\n", StandardCharsets.US_ASCII);
            Files.createDirectory(share.resolve("dir"));
            Files.write(share.resolve("dir").resolve("data"), new byte[8192]);
            Files.createSymbolicLink(share.resolve("link"), Path.of("hello.txt"));
            try (FuzzedRequests requests = new FuzzedRequests(new VirtioFs("fuzz", "fuzz", share, false, FuzzedRequests.QUEUE_SIZE), VirtioFs.REQUESTS)) {
                requests.serve(boundFallocate(input));
            } catch (VirtioProtocolException | GuestMemoryException refused) {
                // the documented answer to a request the device cannot answer with an errno
            }
        } finally {
            deleteTree(share);
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

    /** Deletes {@code dir} and all below it; links are deleted, never followed. */
    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
