package dev.panamax.virtio.fs;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;
import static dev.panamax.virtio.fs.FuseTestClient.body;
import static dev.panamax.virtio.fs.FuseTestClient.request;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.sys.FsAbi;
import dev.panamax.sys.MappedMemory;
import dev.panamax.sys.Seccomp;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver.Buffer;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** virtio-fs driven through its queues by {@link VirtioTestDriver}, as a guest's FUSE client would, on a real host directory. */
class VirtioFsTest {
    static final int QUEUE_SIZE = 64;
    static final int REPLY_ROOM = 8192;
    static final int O_RDWR = 2;

    @TempDir
    Path share;
    GuestMemory memory;
    VirtioFs fs;
    VirtioTestDriver driver;
    long unique = 1;
    int violationsBefore;

    @BeforeEach
    void setUp() {
        violationsBefore = VirtioTestDriver.VIOLATIONS.size();
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(16 << 20));
    }

    @AfterEach
    void tearDown() {
        if (fs != null) {
            fs.close();
        }
        memory.close();
        // The driver runs the queues' threads under their seccomp filter, which only reports here: a call the FS
        // profile lacks must fail the test.
        List<Seccomp.Violation> all = VirtioTestDriver.VIOLATIONS;
        assertThat(all.subList(violationsBefore, all.size())).as("seccomp violations of the device's threads")
                .noneMatch(v -> v.threadName().startsWith("virtio-fs-"));
    }

    void start(boolean readOnly) {
        fs = new VirtioFs("fs0", "hostdir", share, readOnly, QUEUE_SIZE);
        driver = new VirtioTestDriver(fs, memory);
        driver.start(QUEUE_SIZE);
    }

    /** A reply as the guest reads it from the used entry and its writable buffers. */
    record Reply(int usedLength, int length, int errno, long unique, ByteBuffer body) {}

    /** Sends {@code buffers} as one chain on {@code q} and reads the reply from {@code replyAt} (the writable part's first byte). */
    Reply exchange(int q, long replyAt, Buffer... buffers) {
        int head = driver.submit(q, buffers);
        Used used = driver.awaitUsed(q);
        assertThat(used.id()).as("used head").isEqualTo(head);
        if (used.length() < 16) {
            return new Reply(used.length(), 0, 0, 0, ByteBuffer.allocate(0));
        }
        ByteBuffer all = ByteBuffer.wrap(driver.read(replyAt, used.length())).order(ByteOrder.LITTLE_ENDIAN);
        return new Reply(used.length(), all.getInt(0), -all.getInt(4), all.getLong(8), all.slice(16, used.length() - 16).order(ByteOrder.LITTLE_ENDIAN));
    }

    /** One request on the request queue, its bytes in one readable buffer, with {@code replyRoom} writable bytes. */
    Reply call(int opcode, long nodeId, byte[] args, int replyRoom) {
        long id = unique++;
        byte[] bytes = request(FuseRequest.HEADER_BYTES + args.length, opcode, id, nodeId, args);
        long replyAt = driver.allocate(replyRoom);
        Reply reply = exchange(VirtioFs.REQUESTS, replyAt, readable(driver.allocate(bytes), bytes.length), writable(replyAt, replyRoom));
        assertThat(reply.usedLength()).as("used length").isEqualTo(reply.length());
        assertThat(reply.unique()).as("unique").isEqualTo(id);
        return reply;
    }

    Reply call(int opcode, long nodeId, FuseTestClient.Body args) {
        return call(opcode, nodeId, args.build(), REPLY_ROOM);
    }

    static Reply ok(Reply reply) {
        assertThat(reply.errno()).as("errno").isZero();
        return reply;
    }

    void init() {
        Reply reply = ok(call(Fuse.FUSE_INIT, 0, body().u32(7).u32(38).u32(128 * 1024).u32(-1).u32(0).zeros(44)));
        assertThat(reply.body().getInt(0)).as("major").isEqualTo(7);
        // The largest WRITE Linux then sends: fuse_in_header, fuse_write_in, a buffer per page; fuse_out_header, fuse_write_out.
        int largestWriteChain = 2 + Short.toUnsignedInt(reply.body().getShort(28)) + 2;
        assertThat(largestWriteChain).as("descriptors of the largest WRITE").isLessThanOrEqualTo(VirtioFs.DEFAULT_QUEUE_SIZE);
    }

    /** GETATTR of the root: the device still serves. */
    void assertServes() {
        Reply reply = ok(call(Fuse.FUSE_GETATTR, Fuse.FUSE_ROOT_ID, body().u32(0).u32(0).u64(0)));
        assertThat(reply.body().remaining()).as("fuse_attr_out").isEqualTo((int) Fuse.ATTR_OUT.byteSize());
        assertThat(fs.status() & VirtioDevice.DEVICE_NEEDS_RESET).as("DEVICE_NEEDS_RESET").isZero();
    }

    @Test
    void theDeviceIsType26WithItsTagAndOneRequestQueueInItsConfiguration() {
        fs = new VirtioFs("fs0", "hostdir", share, false, QUEUE_SIZE);
        assertThat(fs.deviceType()).isEqualTo(26);
        assertThat(fs.queueCount()).isEqualTo(2);
        assertThat(fs.configSize()).isEqualTo(40);
        byte[] tag = new byte[36];
        for (int i = 0; i < 36; i++) {
            tag[i] = (byte) fs.readConfig(i, 1);
        }
        byte[] expected = Arrays.copyOf("hostdir".getBytes(StandardCharsets.US_ASCII), 36);
        assertThat(tag).isEqualTo(expected);
        assertThat(fs.readConfig(36, 4)).as("num_request_queues").isEqualTo(1);
    }

    @Test
    void forgetsThatKeepComingAreTakenWithoutNotificationsThenTheQueueAsksForThemAgain() throws IOException {
        for (int i = 0; i < 3; i++) {
            Files.writeString(share.resolve("f" + i), "data");
        }
        start(true);
        init();
        long[] nodes = new long[3];
        for (int i = 0; i < 3; i++) {
            nodes[i] = FuseTestClient.entry(ok(call(Fuse.FUSE_LOOKUP, Fuse.FUSE_ROOT_ID, body().name("f" + i))).body()).nodeId();
        }
        assertThat(fs.nodeCount()).isEqualTo(4);
        // The first FORGET is notified, as the ring's avail_event (0, armed at the start) asks.
        driver.submit(VirtioFs.HIPRIO, forget(nodes[0]));
        driver.awaitUsed(VirtioFs.HIPRIO);
        // While FORGETs keep coming the device asks for no notification (avail_event stays at 0, so a driver with
        // EVENT_IDX would not notify for the next ones), and takes them anyway: these two are never notified.
        assertThat(driver.availEvent(VirtioFs.HIPRIO)).as("avail_event just after a FORGET").isZero();
        driver.offer(VirtioFs.HIPRIO, forget(nodes[1]));
        driver.offer(VirtioFs.HIPRIO, forget(nodes[2]));
        driver.awaitUsed(VirtioFs.HIPRIO);
        driver.awaitUsed(VirtioFs.HIPRIO);
        assertThat(fs.nodeCount()).as("the root only").isEqualTo(1);
        // Once none came for a few looks, the device asks to be notified at the next one again, and sleeps.
        VirtioTestDriver.await(() -> driver.availEvent(VirtioFs.HIPRIO) == 3, "avail_event at the next FORGET");
        assertServes();
    }

    private Buffer forget(long node) {
        byte[] forget = request(FuseRequest.HEADER_BYTES + 8, Fuse.FUSE_FORGET, unique++, node, body().u64(1).build());
        return readable(driver.allocate(forget), forget.length);
    }

    @Test
    void theShareIsServedWithItsCacheMode() throws IOException {
        Files.writeString(share.resolve("f"), "data");
        fs = new VirtioFs("fs0", "hostdir", share, true, CacheMode.NONE, QUEUE_SIZE);
        assertThat(fs.cache()).isEqualTo(CacheMode.NONE);
        driver = new VirtioTestDriver(fs, memory);
        driver.start(QUEUE_SIZE);
        init();
        ByteBuffer entry = ok(call(Fuse.FUSE_LOOKUP, Fuse.FUSE_ROOT_ID, body().name("f"))).body();
        long node = entry.getLong(0);
        assertThat(entry.getLong(16)).as("entry_valid").isZero();
        assertThat(entry.getLong(24)).as("attr_valid").isZero();
        ByteBuffer open = ok(call(Fuse.FUSE_OPEN, node, body().u32(FsAbi.O_RDONLY).u32(0))).body();
        assertThat(open.getInt(8)).as("open_flags").isEqualTo(Fuse.FOPEN_DIRECT_IO);
        try (VirtioFs auto = new VirtioFs("fs1", "other", share, false, QUEUE_SIZE)) {
            assertThat(auto.cache()).as("the default").isEqualTo(CacheMode.AUTO);
        }
    }

    @Test
    void tagsAreOneTo36BytesOfUtf8WithoutNul() {
        assertThat(VirtioFs.tagProblem("a")).isNull();
        assertThat(VirtioFs.tagProblem("é".repeat(18))).as("36 bytes").isNull();
        assertThat(VirtioFs.tagProblem("é".repeat(18) + "x")).contains("37 bytes");
        assertThat(VirtioFs.tagProblem("")).contains("empty");
        assertThat(VirtioFs.tagProblem("a\0b")).contains("NUL");
        assertThatThrownBy(() -> new VirtioFs("fs0", "x".repeat(37), share, false, QUEUE_SIZE))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at most 36");
    }

    @Test
    void aShareThatIsNotADirectoryIsRefusedNamingIt() throws IOException {
        Path file = Files.writeString(share.resolve("file"), "x");
        assertThatThrownBy(() -> new VirtioFs("fs0", "t", file, false, QUEUE_SIZE)).hasMessageContaining(file.toString());
        assertThatThrownBy(() -> new VirtioFs("fs0", "t", share.resolve("missing"), false, QUEUE_SIZE))
                .isInstanceOf(UncheckedIOException.class).hasMessageContaining("missing");
    }

    @Test
    void aWholeSessionCreatesWritesReadsListsAndForgetsThroughTheQueues() throws IOException, InterruptedException {
        start(false);
        init();
        assertThat(call(Fuse.FUSE_LOOKUP, Fuse.FUSE_ROOT_ID, body().name("hello.txt")).errno()).isEqualTo(FsAbi.ENOENT);

        ByteBuffer created = ok(call(Fuse.FUSE_CREATE, Fuse.FUSE_ROOT_ID, body().u32(O_RDWR).u32(0100644).u32(022).u32(0).name("hello.txt"))).body();
        long node = FuseTestClient.entry(created).nodeId();
        long fh = created.getLong();
        assertThat(fs.nodeCount()).isEqualTo(2);
        assertThat(fs.openFileCount()).isEqualTo(1);

        // WRITE as Linux frames it: header and fuse_write_in in one buffer, the data in another.
        byte[] data = "hello from the guest".getBytes(StandardCharsets.UTF_8);
        byte[] args = body().u64(fh).u64(0).u32(data.length).u32(0).u64(0).u32(0).u32(0).build();
        long id = unique++;
        byte[] head = request(FuseRequest.HEADER_BYTES + args.length + data.length, Fuse.FUSE_WRITE, id, node, args);
        long replyAt = driver.allocate(64);
        Reply written = ok(exchange(VirtioFs.REQUESTS, replyAt, readable(driver.allocate(head), head.length),
                readable(driver.allocate(data), data.length), writable(replyAt, 64)));
        assertThat(written.unique()).isEqualTo(id);
        assertThat(written.body().getInt(0)).as("bytes written").isEqualTo(data.length);
        assertThat(Files.readString(share.resolve("hello.txt"))).isEqualTo("hello from the guest");

        // READ with the reply header in one writable buffer and the data in another.
        byte[] readArgs = body().u64(fh).u64(6).u32(100).u32(0).u64(0).u32(0).u32(0).build();
        id = unique++;
        byte[] readRequest = request(FuseRequest.HEADER_BYTES + readArgs.length, Fuse.FUSE_READ, id, node, readArgs);
        long header = driver.allocate(16);
        long payload = driver.allocate(100);
        int readHead = driver.submit(VirtioFs.REQUESTS, readable(driver.allocate(readRequest), readRequest.length), writable(header, 16),
                writable(payload, 100));
        Used used = driver.awaitUsed(VirtioFs.REQUESTS);
        assertThat(used).isEqualTo(new Used(readHead, 16 + data.length - 6));
        ByteBuffer out = ByteBuffer.wrap(driver.read(header, 16)).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(out.getInt(0)).isEqualTo(used.length());
        assertThat(out.getInt(4)).as("error").isZero();
        assertThat(new String(driver.read(payload, data.length - 6), StandardCharsets.UTF_8)).isEqualTo("from the guest");

        ok(call(Fuse.FUSE_RELEASE, node, body().u64(fh).u32(0).u32(0).u64(0)));
        assertThat(fs.openFileCount()).isZero();

        long dirFh = ok(call(Fuse.FUSE_OPENDIR, Fuse.FUSE_ROOT_ID, body().u32(0).u32(0))).body().getLong(0);
        ByteBuffer listing = ok(call(Fuse.FUSE_READDIRPLUS, Fuse.FUSE_ROOT_ID, body().u64(dirFh).u64(0).u32(4096).u32(0).u64(0).u32(0).u32(0))).body();
        List<String> names = new ArrayList<>();
        while (listing.hasRemaining()) {
            FuseTestClient.entry(listing);
            listing.getLong();
            listing.getLong();
            int nameLength = listing.getInt();
            listing.getInt();
            byte[] name = new byte[nameLength];
            listing.get(name);
            listing.position(listing.position() + (((nameLength + 7) & ~7) - nameLength));
            names.add(new String(name, StandardCharsets.UTF_8));
        }
        assertThat(names).contains("hello.txt");
        ok(call(Fuse.FUSE_RELEASEDIR, Fuse.FUSE_ROOT_ID, body().u64(dirFh).u32(0).u32(0).u64(0)));

        // FORGET on the hiprio queue: no reply, the chain used with 0 bytes, every lookup of the node dropped.
        byte[] forget = request(FuseRequest.HEADER_BYTES + 8, Fuse.FUSE_FORGET, unique++, node, body().u64(100).build());
        int forgetHead = driver.submit(VirtioFs.HIPRIO, readable(driver.allocate(forget), forget.length));
        assertThat(driver.awaitUsed(VirtioFs.HIPRIO)).isEqualTo(new Used(forgetHead, 0));
        assertThat(fs.nodeCount()).as("the root only").isEqualTo(1);
        assertThat(fs.unansweredRequests()).as("a FORGET is not an unanswered request").isZero();
        // The interrupt follows the used-ring write, so it may not have come yet.
        driver.interrupts().awaitQueue(VirtioFs.HIPRIO, 1, VirtioTestDriver.TIMEOUT);
        assertServes();
    }

    /** READ's reply as Linux frames it, in {@code buffers}: returns the used entry. */
    Used read(long node, long fh, long offset, int size, Buffer... buffers) {
        byte[] args = body().u64(fh).u64(offset).u32(size).u32(0).u64(0).u32(0).u32(0).build();
        byte[] bytes = request(FuseRequest.HEADER_BYTES + args.length, Fuse.FUSE_READ, unique++, node, args);
        Buffer[] chain = new Buffer[buffers.length + 1];
        chain[0] = readable(driver.allocate(bytes), bytes.length);
        System.arraycopy(buffers, 0, chain, 1, buffers.length);
        int head = driver.submit(VirtioFs.REQUESTS, chain);
        Used used = driver.awaitUsed(VirtioFs.REQUESTS);
        assertThat(used.id()).isEqualTo(head);
        return used;
    }

    @Test
    void aReadFillsTheGuestsBuffersAfterTheHeaderWithItsSizeAndNoMore() throws IOException {
        byte[] content = new byte[10_000];
        new Random(7).nextBytes(content);
        Files.write(share.resolve("data"), content);
        start(false);
        init();
        long node = FuseTestClient.entry(ok(call(Fuse.FUSE_LOOKUP, Fuse.FUSE_ROOT_ID, body().name("data"))).body()).nodeId();
        long fh = ok(call(Fuse.FUSE_OPEN, node, body().u32(0).u32(0))).body().getLong(0);

        // The header and 5 bytes of data share a buffer, 3 bytes follow, then a buffer longer than the rest.
        byte[] untouched = new byte[2000];
        Arrays.fill(untouched, (byte) 0x5a);
        long first = driver.allocate(21);
        long second = driver.allocate(3);
        long third = driver.allocate(untouched);
        Used used = read(node, fh, 100, 1000, writable(first, 21), writable(second, 3), writable(third, 2000));
        assertThat(used.length()).isEqualTo(16 + 1000);
        ByteBuffer header = ByteBuffer.wrap(driver.read(first, 16)).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(header.getInt(0)).as("len").isEqualTo(16 + 1000);
        assertThat(header.getInt(4)).as("error").isZero();
        byte[] data = new byte[1000];
        System.arraycopy(driver.read(first + 16, 5), 0, data, 0, 5);
        System.arraycopy(driver.read(second, 3), 0, data, 5, 3);
        System.arraycopy(driver.read(third, 992), 0, data, 8, 992);
        assertThat(data).isEqualTo(Arrays.copyOfRange(content, 100, 1100));
        assertThat(driver.read(third + 992, 2000 - 992)).as("past the READ's size").isEqualTo(Arrays.copyOfRange(untouched, 992, 2000));

        // At the end of the file: what is left.
        long tail = driver.allocate(16 + 1000);
        assertThat(read(node, fh, 9_990, 1000, writable(tail, 16 + 1000)).length()).isEqualTo(16 + 10);
        assertThat(driver.read(tail + 16, 10)).isEqualTo(Arrays.copyOfRange(content, 9_990, 10_000));

        // Buffers too small for the size asked: an error reply, nothing else.
        long small = driver.allocate(16 + 500);
        assertThat(read(node, fh, 0, 1000, writable(small, 16 + 500)).length()).isEqualTo(16);
        assertThat(ByteBuffer.wrap(driver.read(small, 16)).order(ByteOrder.LITTLE_ENDIAN).getInt(4)).isEqualTo(-FsAbi.EINVAL);
        assertServes();
    }

    @Test
    void aRequestInAnIndirectTableIsServedAsADirectOne() {
        start(false);
        init();
        byte[] bytes = request(FuseRequest.HEADER_BYTES + 16, Fuse.FUSE_GETATTR, 555, Fuse.FUSE_ROOT_ID, body().u32(0).u32(0).u64(0).build());
        long header = driver.allocate(16);
        long attr = driver.allocate(200);
        int head = driver.submitIndirect(VirtioFs.REQUESTS, readable(driver.allocate(Arrays.copyOf(bytes, 30)), 30),
                readable(driver.allocate(Arrays.copyOfRange(bytes, 30, bytes.length)), bytes.length - 30), writable(header, 16),
                writable(attr, 200));
        Used used = driver.awaitUsed(VirtioFs.REQUESTS);
        assertThat(used).isEqualTo(new Used(head, 16 + (int) Fuse.ATTR_OUT.byteSize()));
        ByteBuffer out = ByteBuffer.wrap(driver.read(header, 16)).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(out.getInt(4)).as("error").isZero();
        assertThat(out.getLong(8)).as("unique").isEqualTo(555);
        assertServes();
    }

    @Test
    void aReadOnlyShareRefusesChangesWithErofs() {
        start(true);
        init();
        Reply reply = call(Fuse.FUSE_CREATE, Fuse.FUSE_ROOT_ID, body().u32(O_RDWR).u32(0100644).u32(022).u32(0).name("new"));
        assertThat(reply.errno()).isEqualTo(FsAbi.EROFS);
        assertThat(Files.exists(share.resolve("new"))).isFalse();
        assertServes();
    }

    @Test
    void aHeaderShorterThanFuseInHeaderIsAnsweredEinvalAndTheDeviceGoesOn() {
        start(false);
        init();
        long replyAt = driver.allocate(64);
        Reply reply = exchange(VirtioFs.REQUESTS, replyAt, readable(driver.allocate(new byte[20]), 20), writable(replyAt, 64));
        assertThat(reply.errno()).isEqualTo(FsAbi.EINVAL);
        assertThat(fs.malformedRequests()).isEqualTo(1);
        assertServes();
    }

    @Test
    void aLengthPastTheReadablePartIsAnsweredEinvalAndTheDeviceGoesOn() {
        start(false);
        init();
        byte[] bytes = request(4096, Fuse.FUSE_GETATTR, 77, Fuse.FUSE_ROOT_ID, body().u32(0).u32(0).u64(0).build());
        long replyAt = driver.allocate(256);
        Reply reply = exchange(VirtioFs.REQUESTS, replyAt, readable(driver.allocate(bytes), bytes.length), writable(replyAt, 256));
        assertThat(reply.errno()).isEqualTo(FsAbi.EINVAL);
        assertThat(reply.unique()).isEqualTo(77);
        assertThat(fs.malformedRequests()).isEqualTo(1);
        assertServes();
    }

    @Test
    void anUnknownOpcodeIsAnsweredEnosysAndTheDeviceGoesOn() {
        start(false);
        init();
        assertThat(call(9999, Fuse.FUSE_ROOT_ID, new byte[8], 64).errno()).isEqualTo(FsAbi.ENOSYS);
        assertServes();
    }

    @Test
    void aReplyThatDoesNotFitTheWritablePartBecomesAnErrorReply() {
        start(false);
        init();
        // fuse_attr_out needs 104 bytes after the header; 40 writable bytes hold only an error reply.
        Reply reply = call(Fuse.FUSE_GETATTR, Fuse.FUSE_ROOT_ID, body().u32(0).u32(0).u64(0).build(), 40);
        assertThat(reply.length()).isEqualTo(16);
        assertThat(reply.errno()).isEqualTo(FsAbi.EINVAL);
        assertServes();
    }

    @Test
    void aWritablePartTooSmallForAReplyHeaderIsUsedWithZeroBytesAndCounted() {
        start(false);
        init();
        byte[] bytes = request(FuseRequest.HEADER_BYTES + 16, Fuse.FUSE_GETATTR, unique++, Fuse.FUSE_ROOT_ID, body().u32(0).u32(0).u64(0).build());
        long replyAt = driver.allocate(8);
        Reply reply = exchange(VirtioFs.REQUESTS, replyAt, readable(driver.allocate(bytes), bytes.length), writable(replyAt, 8));
        assertThat(reply.usedLength()).isZero();
        assertThat(driver.read(replyAt, 8)).as("nothing written").isEqualTo(new byte[8]);
        assertThat(fs.unansweredRequests()).isEqualTo(1);
        assertServes();
    }

    @Test
    void aChainWithoutAReadablePartIsAnsweredEinvalAndTheDeviceGoesOn() {
        start(false);
        init();
        long replyAt = driver.allocate(64);
        Reply reply = exchange(VirtioFs.REQUESTS, replyAt, writable(replyAt, 64));
        assertThat(reply.errno()).isEqualTo(FsAbi.EINVAL);
        assertThat(reply.unique()).isZero();
        assertServes();
    }

    @Test
    void aRequestLongerThanTheDeviceBufferIsAnsweredEioWithoutBeingRead() {
        start(false);
        init();
        int length = VirtioFs.REQUEST_BUFFER_BYTES + 1;
        byte[] head = request(length, Fuse.FUSE_WRITE, 4242, Fuse.FUSE_ROOT_ID, new byte[0]);
        long replyAt = driver.allocate(64);
        Reply reply = exchange(VirtioFs.REQUESTS, replyAt, readable(driver.allocate(head), head.length),
                readable(driver.allocate(length - head.length), length - head.length), writable(replyAt, 64));
        assertThat(reply.errno()).isEqualTo(FsAbi.EIO);
        assertThat(reply.unique()).isEqualTo(4242);
        assertThat(fs.oversizedRequests()).isEqualTo(1);
        assertServes();
    }

    @Test
    void aResetEndsTheGuestsSessionAndClosesItsFiles() throws IOException {
        Files.writeString(share.resolve("f"), "x");
        start(false);
        init();
        long node = FuseTestClient.entry(ok(call(Fuse.FUSE_LOOKUP, Fuse.FUSE_ROOT_ID, body().name("f"))).body()).nodeId();
        ok(call(Fuse.FUSE_OPEN, node, body().u32(0).u32(0)));
        assertThat(fs.nodeCount()).isEqualTo(2);
        assertThat(fs.openFileCount()).isEqualTo(1);

        driver.reset();
        assertThat(fs.nodeCount()).as("the root only").isEqualTo(1);
        assertThat(fs.openFileCount()).isZero();

        driver.start(QUEUE_SIZE);
        assertThat(call(Fuse.FUSE_GETATTR, Fuse.FUSE_ROOT_ID, body().u32(0).u32(0).u64(0)).errno()).as("before INIT").isEqualTo(FsAbi.EIO);
        init();
        assertServes();
    }

    @Test
    void closeReleasesEveryHandleOfTheShare() {
        start(false);
        init();
        ok(call(Fuse.FUSE_OPENDIR, Fuse.FUSE_ROOT_ID, body().u32(0).u32(0)));
        fs.close();
        assertThat(fs.nodeCount()).isZero();
        assertThat(fs.openFileCount()).isZero();
        fs.close(); // twice is harmless
    }

    @Test
    void aSnapshotCarriesTheGuestsSessionToTheRestoredDeviceAndItsTagMustMatch() throws IOException {
        Files.writeString(share.resolve("f"), "carried");
        start(false);
        init();
        long node = FuseTestClient.entry(ok(call(Fuse.FUSE_LOOKUP, Fuse.FUSE_ROOT_ID, body().name("f"))).body()).nodeId();
        long fh = ok(call(Fuse.FUSE_OPEN, node, body().u32(0).u32(0))).body().getLong();
        fs.quiesce();
        StateWriter out = new StateWriter();
        fs.saveState(out);
        byte[] state = out.toByteArray();
        fs.close();

        VirtioFs otherTag = new VirtioFs("fs0", "elsewhere", share, false, QUEUE_SIZE);
        try {
            otherTag.connect(memory, new dev.panamax.virtio.CountingInterrupts(VirtioFs.QUEUE_COUNT));
            assertThatThrownBy(() -> otherTag.restoreState(new StateReader(state, "the snapshot")))
                    .isInstanceOf(dev.panamax.vm.state.StateFormatException.class).hasMessageContaining("has tag hostdir");
        } finally {
            otherTag.close();
        }
        fs = new VirtioFs("fs0", "hostdir", share, false, QUEUE_SIZE);
        driver = driver.continuedOn(fs);
        StateReader in = new StateReader(state, "the snapshot");
        fs.restoreState(in);
        in.end();
        assertThat(fs.nodeCount()).isEqualTo(2);
        assertThat(fs.openFileCount()).isEqualTo(1);
        Reply read = ok(call(Fuse.FUSE_READ, node, body().u64(fh).u64(0).u32(100).u32(0).u64(0).u32(0).u32(0)));
        byte[] data = new byte[read.body().remaining()];
        read.body().get(data);
        assertThat(new String(data, StandardCharsets.US_ASCII)).isEqualTo("carried");
        assertServes();
    }
}
