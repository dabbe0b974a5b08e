package dev.panamax.virtio.blk;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.storage.RawImage;
import dev.panamax.virtio.FuzzedRequests;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.vm.GuestMemoryException;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * virtio-blk from a fuzzer's input: requests ({@link FuzzedRequests} frames them), reads, writes,
 * flushes, GET_ID, discards and write-zeroes with any header, sector and segment list, on a writable
 * 1 MiB raw disk; a bad request is answered with a status, only a malformed chain may throw. And the
 * device's section of a snapshot, which a restore reads (and checks) before it applies anything.
 */
class VirtioBlkFuzzTest {
    private static final int DISK_BYTES = 1 << 20;
    @TempDir
    static Path dir;
    /** One device for every input: the disk's contents change, which no request's parsing depends on. */
    private static VirtioBlk blk;
    private static FuzzedRequests fuzzedRequests;

    @BeforeAll
    static void createDevice() throws IOException {
        blk = new VirtioBlk("fuzz", RawImage.create(dir.resolve("disk.raw"), DISK_BYTES), 1, FuzzedRequests.QUEUE_SIZE);
        fuzzedRequests = new FuzzedRequests(blk, 0);
    }

    @AfterAll
    static void closeDevice() {
        fuzzedRequests.close();
    }

    @FuzzTest
    void requests(byte[] input) {
        try {
            fuzzedRequests.serve(input);
        } catch (VirtioProtocolException | GuestMemoryException refused) {
            // the documented answer to a request the device cannot answer with a status
        }
    }

    /** A snapshot's section of this device; reading it changes nothing, so one device serves every input. */
    @FuzzTest
    void savedState(byte[] section) {
        try {
            StateReader in = new StateReader(section, "section fuzz");
            blk.readState(in);
            in.end();
        } catch (StateFormatException refused) {
            // the documented answer to a section that is malformed or not this device's
        }
    }
}
