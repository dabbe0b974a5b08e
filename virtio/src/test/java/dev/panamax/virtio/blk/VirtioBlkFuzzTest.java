package dev.panamax.virtio.blk;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.storage.RawImage;
import dev.panamax.virtio.FuzzedRequests;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.vm.GuestMemoryException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * virtio-blk requests from a fuzzer's input ({@link FuzzedRequests} frames them): reads, writes,
 * flushes, GET_ID, discards and write-zeroes with any header, sector and segment list, on a writable
 * 1 MiB raw disk. A bad request is answered with a status; only a malformed chain may throw.
 */
class VirtioBlkFuzzTest {
    private static final int DISK_BYTES = 1 << 20;
    /** One device for every input: the disk's contents change, which no request's parsing depends on. */
    private static final FuzzedRequests REQUESTS = requests();

    private static FuzzedRequests requests() {
        try {
            Path dir = Files.createTempDirectory("virtio-blk-fuzz");
            dir.toFile().deleteOnExit();
            Path disk = dir.resolve("disk.raw");
            disk.toFile().deleteOnExit();
            RawImage image = RawImage.create(disk, DISK_BYTES);
            return new FuzzedRequests(new VirtioBlk("fuzz", image, 1, FuzzedRequests.QUEUE_SIZE), 0);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @FuzzTest
    void requests(byte[] input) {
        try {
            REQUESTS.serve(input);
        } catch (VirtioProtocolException | GuestMemoryException refused) {
            // the documented answer to a request the device cannot answer with a status
        }
    }
}
