package dev.panamax.virtio.vsock;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.panamax.sys.MappedMemory;
import dev.panamax.sys.Seccomp;
import dev.panamax.sys.SyscallProfile;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.vm.ThreadSandbox;
import dev.panamax.vm.GuestMemory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** virtio-vsock driven by a Java guest ({@link VsockGuest}) and host programs on real Unix sockets. */
class VirtioVsockTest {
    static final long CID = 3;
    static final int MIB = 1 << 20;

    @TempDir
    Path dir;
    Path uds;
    GuestMemory memory;
    VirtioVsock vsock;
    VsockGuest guest;
    /** Host sockets to close after the test; host programs add theirs from several threads at once. */
    final List<AutoCloseable> closeables = new java.util.concurrent.CopyOnWriteArrayList<>();
    final ExecutorService host = Executors.newCachedThreadPool();
    /** Calls the device's threads made that their seccomp filter forbids: the filters are on in every test. */
    final BlockingQueue<Seccomp.Violation> forbiddenCalls = new LinkedBlockingQueue<>();

    @BeforeEach
    void setUp() {
        uds = dir.resolve("v.sock");
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(8 << 20));
    }

    @AfterEach
    void tearDown() throws Exception {
        host.shutdownNow();
        for (AutoCloseable c : closeables) {
            c.close();
        }
        if (vsock != null) {
            vsock.close();
        }
        memory.close();
        if (guest != null) {
            assertThat(guest.problems).as("packets from the device that break the protocol").isEmpty();
        }
        assertThat(forbiddenCalls).as("calls the device's threads may not make").isEmpty();
    }

    void start() {
        vsock = sandboxed(new VirtioVsock("vsock0", CID, uds, VsockGuest.QUEUE_SIZE));
        guest = new VsockGuest(vsock, new VirtioTestDriver(vsock, memory));
        guest.start();
    }

    /** {@code device} with its queues' and host side's threads under their seccomp filter, as in a VM. */
    VirtioVsock sandboxed(VirtioVsock device) {
        device.confineIoThreads(ThreadSandbox.reportingTo(forbiddenCalls::add));
        return device;
    }

    static byte[] random(int length, long seed) {
        byte[] data = new byte[length];
        new Random(seed).nextBytes(data);
        return data;
    }

    static byte[] sha256(byte[] data) {
        return VsockGuest.sha256().digest(data);
    }

    /** A host program's connection to guest port {@code port}: CONNECT, then the OK line (or null when the device closed it). */
    record HostClient(SocketChannel channel, String reply) {}

    HostClient hostConnect(int port) throws IOException {
        SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(uds));
        closeables.add(channel);
        try {
            channel.write(ByteBuffer.wrap(("CONNECT " + port + "\n").getBytes(StandardCharsets.US_ASCII)));
        } catch (IOException closedAlready) {
            return new HostClient(channel, null); // a device that refuses may close before the line is written
        }
        return new HostClient(channel, readLine(channel));
    }

    CompletableFuture<HostClient> hostConnectAsync(int port) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return hostConnect(port);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, host);
    }

    /** The next connection to {@code server}, accepted on the host program's thread. */
    CompletableFuture<SocketChannel> acceptAsync(ServerSocketChannel server) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return server.accept();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, host);
    }

    /** A line from {@code channel}; null when the device closed it first (the end of the stream, or a reset when bytes were left unread). */
    static String readLine(SocketChannel channel) throws IOException {
        StringBuilder line = new StringBuilder();
        ByteBuffer one = ByteBuffer.allocate(1);
        while (true) {
            one.clear();
            int n;
            try {
                n = channel.read(one);
            } catch (java.net.SocketException e) {
                n = -1; // reset
            }
            if (n < 0) {
                return line.isEmpty() ? null : line.toString();
            }
            char c = (char) one.get(0);
            if (c == '\n') {
                return line.toString();
            }
            line.append(c);
        }
    }

    static CompletableFuture<Void> writeAll(ExecutorService on, SocketChannel channel, byte[] data) {
        return CompletableFuture.runAsync(() -> {
            try {
                ByteBuffer b = ByteBuffer.wrap(data);
                while (b.hasRemaining()) {
                    channel.write(b);
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, on);
    }

    /** Reads {@code length} bytes (or to the end of stream when -1); returns them. */
    static CompletableFuture<byte[]> readAll(ExecutorService on, SocketChannel channel, int length) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
                ByteBuffer b = ByteBuffer.allocate(64 * 1024);
                while (length < 0 || out.size() < length) {
                    b.clear();
                    if (length >= 0) {
                        b.limit(Math.min(b.capacity(), length - out.size()));
                    }
                    int n = channel.read(b);
                    if (n < 0) {
                        break;
                    }
                    out.write(b.array(), 0, n);
                }
                return out.toByteArray();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, on);
    }

    ServerSocketChannel hostListen(int port) throws IOException {
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(Path.of(uds + "_" + port)));
        closeables.add(server);
        closeables.add(() -> Files.deleteIfExists(Path.of(uds + "_" + port)));
        return server;
    }

    <T> T await(CompletableFuture<T> future, String what) {
        guest.pumpUntil(future::isDone, what);
        return future.join();
    }

    @Test
    void theDeviceIsType19WithTheGuestCidInItsConfigurationAndOffersStreamsOnVersion1() {
        vsock = new VirtioVsock("vsock0", 0x8765_4321L, uds, 64);
        assertThat(vsock.deviceType()).isEqualTo(19);
        assertThat(vsock.queueCount()).isEqualTo(3);
        assertThat(vsock.configSize()).isEqualTo(8);
        assertThat(vsock.readConfig(0, 8)).isEqualTo(0x8765_4321L);
        assertThat(vsock.readConfig(0, 4)).isEqualTo(0x8765_4321L);
        assertThat(vsock.readConfig(4, 4)).isZero();
        assertThat(vsock.deviceFeatures()).isEqualTo(1L << VirtioDevice.VIRTIO_F_VERSION_1 | 1L << VirtioDevice.VIRTIO_F_RING_INDIRECT_DESC
                | 1L << VirtioDevice.VIRTIO_F_RING_EVENT_IDX);
        assertThat(Files.exists(uds)).as("the host side's socket").isTrue();
        vsock.close();
        assertThat(Files.exists(uds)).as("removed on close").isFalse();
    }

    @Test
    void aSocketPathInUseIsRefusedNamingIt() throws IOException {
        Files.writeString(uds, "");
        Throwable thrown = catchThrowable(() -> new VirtioVsock("vsock0", CID, uds, 64));
        assertThat(thrown).isInstanceOf(UncheckedIOException.class).hasMessageContaining(uds.toString())
                .hasMessageContaining("something is at the vsock socket path already");
        assertThat(Files.readString(uds)).as("left alone").isEmpty();
    }

    @Test
    void guestCidsBelow3OrAbove2To32Minus2AreRefused() {
        assertThat(catchThrowable(() -> new VirtioVsock("vsock0", 2, uds, 64))).hasMessage("guest CID 2 is not from 3 to 4294967294");
        assertThat(catchThrowable(() -> new VirtioVsock("vsock0", 0xffff_ffffL, uds, 64)))
                .hasMessage("guest CID 4294967295 is not from 3 to 4294967294");
        assertThat(Files.exists(uds)).isFalse();
    }

    @Test
    void aHostProgramReachesTheGuestListenerAndFourMibFlowEachWay() throws Exception {
        start();
        guest.listening.add(5000);
        CompletableFuture<HostClient> client = hostConnectAsync(5000);
        VsockGuest.Conn conn = guest.awaitIncoming(5000);
        HostClient c = await(client, "the OK line");
        assertThat(c.reply()).isEqualTo("OK " + VsockMuxer.FIRST_LOCAL_PORT);
        assertThat(conn.hostPort).isEqualTo(VsockMuxer.FIRST_LOCAL_PORT);

        byte[] toGuest = random(4 * MIB, 1);
        byte[] toHost = random(4 * MIB, 2);
        CompletableFuture<Void> written = writeAll(host, c.channel(), toGuest);
        CompletableFuture<byte[]> read = readAll(host, c.channel(), toHost.length);
        guest.write(conn, toHost);
        guest.pumpUntil(() -> conn.rxBytes == toGuest.length && written.isDone() && read.isDone(), "4 MiB each way");
        written.join();
        assertThat(conn.rxDigest.digest()).isEqualTo(sha256(toGuest));
        assertThat(sha256(read.join())).isEqualTo(sha256(toHost));
        assertThat(vsock.counts().reset() + vsock.counts().dropped()).isZero();
    }

    @Test
    void theGuestReachesAHostListenerOnItsPortSocketAndFourMibFlowEachWay() throws Exception {
        start();
        ServerSocketChannel server = hostListen(6000);
        CompletableFuture<SocketChannel> accepted = acceptAsync(server);
        VsockGuest.Conn conn = guest.connect(1234, 6000);
        assertThat(conn.established).isTrue();
        SocketChannel peer = await(accepted, "the host listener to accept");
        closeables.add(peer);

        byte[] toGuest = random(4 * MIB, 3);
        byte[] toHost = random(4 * MIB, 4);
        CompletableFuture<Void> written = writeAll(host, peer, toGuest);
        CompletableFuture<byte[]> read = readAll(host, peer, toHost.length);
        guest.write(conn, toHost);
        guest.pumpUntil(() -> conn.rxBytes == toGuest.length && written.isDone() && read.isDone(), "4 MiB each way");
        assertThat(conn.rxDigest.digest()).isEqualTo(sha256(toGuest));
        assertThat(sha256(read.join())).isEqualTo(sha256(toHost));
    }

    @Test
    void twentyConnectionsAtOnceEachGetTheirOwnBytesBack() throws Exception {
        start();
        guest.listening.add(7000);
        // Echoing from the connection's first byte: bytes that came in the same pump as the request
        // would otherwise be read before the connection was marked to echo, and never sent back.
        guest.echoNewConnections = true;
        int count = 20;
        List<CompletableFuture<byte[]>> echoes = new ArrayList<>();
        List<byte[]> sent = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            byte[] data = random(300 * 1024 + i, 100 + i);
            sent.add(data);
            echoes.add(hostConnectAsync(7000).thenCompose(c -> {
                assertThat(c.reply()).startsWith("OK ");
                return writeAll(host, c.channel(), data).thenCombine(readAll(host, c.channel(), data.length), (v, back) -> back);
            }));
        }
        guest.pumpUntil(() -> echoes.stream().allMatch(CompletableFuture::isDone), "20 echoes");
        for (int i = 0; i < count; i++) {
            assertThat(echoes.get(i).join()).as("connection " + i).isEqualTo(sent.get(i));
        }
        assertThat(guest.connections).hasSize(count);
    }

    @Test
    void aGuestSendingPastItsCreditIsResetAndTheHostSideHeldNoMore() throws Exception {
        start();
        ServerSocketChannel server = hostListen(6001);
        CompletableFuture<SocketChannel> accepted = acceptAsync(server);
        VsockGuest.Conn conn = guest.connect(1, 6001);
        SocketChannel peer = await(accepted, "the host listener to accept");
        closeables.add(peer);
        // The host program reads nothing: the socket fills, then the device's buffer, then the credit runs out.
        byte[] chunk = random(VsockGuest.TX_PAYLOAD, 5);
        long[] sentTotal = {0};
        while (true) {
            guest.pump();
            if (conn.credit() == 0) {
                // What the device told may be stale: ask, and take its answer (made after every byte before it).
                int before = guest.received.size();
                guest.control(conn, VsockHeader.OP_CREDIT_REQUEST, 0);
                guest.pumpUntil(() -> guest.received.subList(before, guest.received.size()).stream()
                        .anyMatch(h -> h.op == VsockHeader.OP_CREDIT_UPDATE), "a credit update");
                if (conn.credit() == 0) {
                    break;
                }
            }
            int n = (int) Math.min(conn.credit(), chunk.length);
            guest.sendData(conn, chunk, 0, n);
            sentTotal[0] += n;
        }
        assertThat(conn.reset).as("a guest within its credit is not reset").isFalse();
        assertThat(vsock.counts().reset()).isZero();
        guest.pumpUntil(guest::txIdle, "the device to take every packet sent"); // the update above may have been an earlier one
        assertThat(vsock.counts().fromGuestBytes()).isEqualTo(sentTotal[0]);
        // Past the credit, packet after packet: the host socket may still take a little more now and then
        // (which a credit update would have told), but the device's buffer fills and the guest is reset.
        for (int extra = 0; extra < 64 && !conn.reset; extra++) {
            guest.sendData(conn, chunk, 0, chunk.length);
            guest.pumpUntil(() -> conn.reset || guest.txIdle(), "the device to take the packet");
        }
        assertThat(conn.reset).as("a guest sending past its credit is reset").isTrue();
        assertThat(vsock.counts().reset()).isEqualTo(1);
        byte[] got = readAll(host, peer, -1).get(VsockGuest.TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        // The socket took what it could; the device held no more than the credit it gave (the packet that
        // did not fit was refused whole), and an RST drops what it held.
        assertThat(vsock.counts().fromGuestBytes() - got.length).as("bytes the device held when it reset the guest")
                .isBetween(0L, (long) VsockMuxer.BUFFER_BYTES);
        assertThat(vsock.connectionCount()).isZero();
    }

    @Test
    void pastTheConnectionLimitHostAndGuestConnectionsAreRefusedUntilOneEnds() throws Exception {
        vsock = sandboxed(new VirtioVsock("vsock0", CID, uds, VsockGuest.QUEUE_SIZE, 2));
        guest = new VsockGuest(vsock, new VirtioTestDriver(vsock, memory));
        guest.start();
        guest.listening.add(5003);
        HostClient first = await(hostConnectAsync(5003), "the first connection");
        HostClient second = await(hostConnectAsync(5003), "the second connection");
        assertThat(List.of(first.reply(), second.reply())).allMatch(r -> r.startsWith("OK "));
        HostClient third = await(hostConnectAsync(5003), "the third connection to be closed");
        assertThat(third.reply()).as("closed without an OK").isNull();
        hostListen(6004);
        VsockGuest.Conn refused = guest.connect(70, 6004);
        assertThat(refused.reset).as("the guest's connection past the limit is reset").isTrue();
        assertThat(vsock.counts().refused()).isEqualTo(2);
        first.channel().close();
        guest.pumpUntil(() -> vsock.connectionCount() == 1, "the closed connection to go, once the guest closed too");
        HostClient fourth = await(hostConnectAsync(5003), "a connection once there is room");
        assertThat(fourth.reply()).startsWith("OK ");
    }

    @Test
    void aConnectToAPortNobodyListensOnIsResetByTheGuestAndTheHostSocketClosed() throws Exception {
        start();
        CompletableFuture<HostClient> client = hostConnectAsync(5001);
        HostClient c = await(client, "the host socket to close");
        assertThat(c.reply()).as("no OK line, the end of the stream").isNull();
        assertThat(guest.received).anyMatch(h -> h.op == VsockHeader.OP_REQUEST && h.dstPort == 5001);
        VirtioTestDriver.await(() -> vsock.connectionCount() == 0, "the connection to be gone");
    }

    @Test
    void malformedConnectLinesAreClosed() throws Exception {
        start();
        for (String line : List.of("CONNECT\n", "CONNECT 4294967296\n", "connect 5\n", "CONNECT -1\n", "X".repeat(40))) {
            SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(uds));
            closeables.add(channel);
            channel.write(ByteBuffer.wrap(line.getBytes(StandardCharsets.US_ASCII)));
            assertThat(readLine(channel)).as(line).isNull();
        }
        assertThat(VsockMuxer.parseConnect("CONNECT 4294967295")).isEqualTo(-1);
        assertThat(guest.received).isEmpty();
    }

    @Test
    void theGuestsConnectionToAHostPortNobodyListensOnIsReset() {
        start();
        VsockGuest.Conn conn = guest.connect(1, 6002);
        assertThat(conn.reset).isTrue();
        assertThat(conn.established).isFalse();
    }

    @Test
    void aHostProgramClosingMidStreamShutsDownItsConnectionOnlyAndTheOthersGoOn() throws Exception {
        start();
        guest.listening.add(5002);
        HostClient a = await(hostConnectAsync(5002), "first connection");
        VsockGuest.Conn connA = guest.awaitIncoming(5002);
        HostClient b = await(hostConnectAsync(5002), "second connection");
        VsockGuest.Conn connB = guest.connections.values().stream().filter(x -> x != connA).findFirst().orElseThrow();
        byte[] half = random(100_000, 6);
        await(writeAll(host, a.channel(), half), "half a stream");
        guest.pumpUntil(() -> connA.rxBytes == half.length, "the first half at the guest");
        a.channel().close();
        guest.pumpUntil(() -> connA.shutdownFlags == VsockHeader.SHUTDOWN_SEND, "SHUTDOWN SEND for the closed connection");
        VirtioTestDriver.await(() -> vsock.connectionCount() == 1, "the closed connection to go after the guest closed too");
        assertThat(connB.reset).isFalse();
        byte[] more = random(500_000, 7);
        CompletableFuture<byte[]> read = readAll(host, b.channel(), more.length);
        guest.write(connB, more);
        assertThat(await(read, "the other connection's bytes")).isEqualTo(more);
    }

    @Test
    void aHostProgramThatHalfClosesStillReadsTheGuestsAnswer() throws Exception {
        start();
        guest.closeAtEndOfStream = false; // it answers first
        guest.listening.add(5003);
        HostClient a = await(hostConnectAsync(5003), "connection");
        VsockGuest.Conn conn = guest.awaitIncoming(5003);
        byte[] question = random(10_000, 8);
        await(writeAll(host, a.channel(), question), "the question");
        a.channel().shutdownOutput();
        guest.pumpUntil(() -> conn.rxBytes == question.length && conn.shutdownFlags == VsockHeader.SHUTDOWN_SEND,
                "the question, then SHUTDOWN SEND");
        byte[] answer = random(300_000, 9);
        CompletableFuture<byte[]> read = readAll(host, a.channel(), -1);
        guest.write(conn, answer);
        guest.control(conn, VsockHeader.OP_SHUTDOWN, VsockHeader.SHUTDOWN_SEND);
        assertThat(read.get(VsockGuest.TIMEOUT.toSeconds(), TimeUnit.SECONDS)).as("the answer, to the end of stream").isEqualTo(answer);
        guest.pumpUntil(() -> conn.reset, "RST once both directions are over");
        VirtioTestDriver.await(() -> vsock.connectionCount() == 0, "the connection to go");
    }

    @Test
    void aHostProgramVanishingWhileTheGuestSendsResetsThatConnection() throws Exception {
        start();
        ServerSocketChannel server = hostListen(6003);
        CompletableFuture<SocketChannel> accepted = acceptAsync(server);
        VsockGuest.Conn conn = guest.connect(9, 6003);
        await(accepted, "accept").close();
        guest.pumpUntil(() -> {
            if (!conn.reset && conn.credit() > 0) {
                guest.sendData(conn, new byte[100], 0, 100);
            }
            return conn.reset || conn.shutdownFlags != 0;
        }, "the device to end the connection");
        assertThat(vsock.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();
    }

    /** An established guest-to-host connection, and its host end. */
    record Pair(VsockGuest.Conn conn, SocketChannel peer) {}

    Pair establish(int guestPort, int hostPort) throws IOException {
        ServerSocketChannel server = hostListen(hostPort);
        CompletableFuture<SocketChannel> accepted = acceptAsync(server);
        VsockGuest.Conn conn = guest.connect(guestPort, hostPort);
        SocketChannel peer = await(accepted, "accept");
        closeables.add(peer);
        return new Pair(conn, peer);
    }

    /** A raw header from the guest with the given fields. */
    byte[] rawHeader(long srcCid, long dstCid, int srcPort, int dstPort, int len, int type, int op) {
        VsockHeader h = new VsockHeader();
        h.srcCid = srcCid;
        h.dstCid = dstCid;
        h.srcPort = srcPort;
        h.dstPort = dstPort;
        h.len = len;
        h.type = type;
        h.op = op;
        h.bufAlloc = VsockGuest.BUF_ALLOC;
        byte[] bytes = new byte[VsockHeader.BYTES];
        h.encode(bytes);
        return bytes;
    }

    void sendRawHeader(byte[] header, int payload) {
        long at = guest.driver.allocate(header);
        if (payload == 0) {
            guest.sendRaw(readable(at, header.length));
        } else {
            guest.sendRaw(readable(at, header.length), readable(guest.driver.allocate(payload), payload));
        }
        guest.awaitTxDone();
    }

    @Test
    void malformedPacketsAreResetOrDroppedAndCountedAndTheDeviceGoesOn() throws Exception {
        start();
        Pair victim = establish(20, 6010);
        Pair bystander = establish(21, 6011);

        guest.sendRaw(readable(guest.driver.allocate(20), 20)); // a short header
        guest.awaitTxDone();
        assertThat(vsock.counts().dropped()).isEqualTo(1);
        sendRawHeader(rawHeader(CID + 1, 2, 20, 6010, 0, 1, VsockHeader.OP_RW), 0); // another guest's CID
        sendRawHeader(rawHeader(CID, 5, 20, 6010, 0, 1, VsockHeader.OP_RW), 0); // not to the host
        assertThat(vsock.counts().dropped()).isEqualTo(3);
        assertThat(victim.conn().reset).as("dropped, not answered").isFalse();

        sendRawHeader(rawHeader(CID, 2, 20, 6010, 200, 1, VsockHeader.OP_RW), 100); // len past the descriptors
        guest.pumpUntil(() -> victim.conn().reset, "RST for a length past the chain");
        assertThat(vsock.counts().reset()).isEqualTo(1);
        assertThat(readAll(host, victim.peer(), -1).get(VsockGuest.TIMEOUT.toSeconds(), TimeUnit.SECONDS)).as("host end closed").isEmpty();

        int before = guest.received.size();
        sendRawHeader(rawHeader(CID, 2, 30, 6010, 0, 1, 99), 0); // an unknown op
        sendRawHeader(rawHeader(CID, 2, 31, 6010, 0, 2, VsockHeader.OP_REQUEST), 0); // SEQPACKET, not offered
        sendRawHeader(rawHeader(CID, 2, 32, 6010, 70_000, 1, VsockHeader.OP_RW), 70_000); // more than a packet's payload
        guest.pumpUntil(() -> guest.received.size() >= before + 3, "three RSTs");
        assertThat(guest.received.subList(before, guest.received.size())).extracting(h -> h.op + "@" + h.dstPort)
                .containsExactly("3@30", "3@31", "3@32");
        assertThat(vsock.counts().reset()).isEqualTo(4);

        assertThat(vsock.status() & VirtioDevice.DEVICE_NEEDS_RESET).isZero();
        byte[] data = random(200_000, 8);
        CompletableFuture<byte[]> read = readAll(host, bystander.peer(), data.length);
        guest.write(bystander.conn(), data);
        assertThat(await(read, "the bystander's bytes")).isEqualTo(data);
    }

    @Test
    void packetsForNoConnectionAreAnsweredWithRstExceptAnRst() {
        start();
        int before = guest.received.size();
        sendRawHeader(rawHeader(CID, 2, 40, 6020, 0, 1, VsockHeader.OP_RST), 0);
        sendRawHeader(rawHeader(CID, 2, 41, 6020, 0, 1, VsockHeader.OP_CREDIT_UPDATE), 0);
        guest.pumpUntil(() -> guest.received.size() > before, "an RST");
        assertThat(guest.received.subList(before, guest.received.size())).extracting(h -> h.op + "@" + h.dstPort).containsExactly("3@41");
    }

    @Test
    void aRxBufferTooSmallForAHeaderFailsTheDevice() throws Exception {
        vsock = sandboxed(new VirtioVsock("vsock0", CID, uds, VsockGuest.QUEUE_SIZE));
        VirtioTestDriver driver = new VirtioTestDriver(vsock, memory);
        driver.start(VsockGuest.QUEUE_SIZE);
        driver.submit(VirtioVsock.RX, VirtioTestDriver.Buffer.writable(driver.allocate(16), 16));
        SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(uds));
        closeables.add(channel);
        channel.write(ByteBuffer.wrap("CONNECT 1\n".getBytes(StandardCharsets.US_ASCII)));
        assertThat(driver.awaitFailure()).contains("receive buffer at descriptor 0 has 16 writable bytes, less than the 44-byte header");
    }

    @Test
    void aDriverResetClosesEveryHostConnection() throws Exception {
        start();
        Pair pair = establish(50, 6030);
        guest.driver.reset();
        assertThat(readAll(host, pair.peer(), -1).get(VsockGuest.TIMEOUT.toSeconds(), TimeUnit.SECONDS)).isEmpty();
        assertThat(vsock.connectionCount()).isZero();
    }

    /**
     * A vCPU resets the device when the driver writes status 0, under the vCPU's seccomp filter:
     * closing the host sockets there (getsockopt, shutdown) would end the VM.
     */
    @Test
    void aDriverResetOnAVcpuThreadMakesOnlyCallsAVcpuMay() throws Exception {
        start();
        Pair pair = establish(51, 6031);
        BlockingQueue<Seccomp.Violation> violations = new LinkedBlockingQueue<>();
        CompletableFuture<Void> reset = new CompletableFuture<>();
        Thread.ofPlatform().name("test-vcpu").start(() -> {
            try {
                ThreadSandbox.reportingTo(violations::add).confineCurrentThread(SyscallProfile.VCPU);
                guest.driver.reset();
                Seccomp.probe("getppid"); // forbidden: the supervisor reports it after any the reset made
                reset.complete(null);
            } catch (Throwable e) {
                reset.completeExceptionally(e);
            }
        });
        reset.get(VsockGuest.TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        Seccomp.Violation first = violations.poll(VsockGuest.TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        assertThat(first).isNotNull();
        assertThat(first.syscall()).as("the first forbidden call on the vCPU thread").isEqualTo("getppid");
        assertThat(readAll(host, pair.peer(), -1).get(VsockGuest.TIMEOUT.toSeconds(), TimeUnit.SECONDS)).isEmpty();
        assertThat(vsock.connectionCount()).isZero();
    }
}
