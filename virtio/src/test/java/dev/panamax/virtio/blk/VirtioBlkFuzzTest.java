package dev.panamax.virtio.blk;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.storage.RawImage;
import dev.panamax.virtio.FuzzedRequests;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.vm.GuestMemoryException;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * virtio-blk from a fuzzer's input: requests ({@link FuzzedRequests} frames them), reads, writes,
 * flushes, GET_ID, discards and write-zeroes with any header, sector and segment list, on a writable
 * 1 MiB raw disk; a bad request is answered with a status, only a malformed chain may throw. And the
 * device's section of a snapshot, which a restore reads (and checks) before it applies anything.
 */
class VirtioBlkFuzzTest {
    private static final int DISK_BYTES = 1 << 20;
    private static final VirtioBlk BLK = device();
    /** One device for every input: the disk's contents change, which no request's parsing depends on. */
    private static final FuzzedRequests REQUESTS = new FuzzedRequests(BLK, 0);

    private static VirtioBlk device() {
        try {
            Path dir = Files.createTempDirectory("virtio-blk-fuzz");
            dir.toFile().deleteOnExit();
            Path disk = dir.resolve("disk.raw");
            disk.toFile().deleteOnExit();
            RawImage image = RawImage.create(disk, DISK_BYTES);
            return new VirtioBlk("fuzz", image, 1, FuzzedRequests.QUEUE_SIZE);
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

    /** A snapshot's section of this device; reading it changes nothing, so one device serves every input. */
    @FuzzTest
    void savedState(byte[] section) {
        try {
            StateReader in = new StateReader(section, "section fuzz");
            BLK.readState(in);
            in.end();
        } catch (StateFormatException refused) {
            // the documented answer to a section that is malformed or not this device's
        }
    }
}
