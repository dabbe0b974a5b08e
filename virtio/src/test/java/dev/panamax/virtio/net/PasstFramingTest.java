package dev.panamax.virtio.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.sys.Poller;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * passt's framing, against a fake passt on a Unix socket: the test writes the stream byte by byte
 * as it likes and reads what the backend writes. Writes to a Unix stream socket are in the peer's
 * queue when they return, so each step's outcome is certain.
 */
@Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // a hang guard only, on a thread of its own: a wait in epoll ignores interrupts
class PasstFramingTest {
    private ServerSocketChannel server;
    private SocketChannel peer;
    private PasstBackend backend;
    private Arena arena;
    private MemorySegment buffer;

    @BeforeEach
    void connect(@TempDir Path dir) throws IOException {
        Path socket = dir.resolve("passt.sock");
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX).bind(UnixDomainSocketAddress.of(socket));
        backend = PasstBackend.connect(socket);
        peer = server.accept();
        arena = Arena.ofShared(); // made here, used on the test's own thread
        buffer = arena.allocate(NetBackend.RECEIVE_BUFFER_BYTES);
    }

    @AfterEach
    void close() throws IOException {
        backend.close();
        peer.close();
        server.close();
        arena.close();
    }

    @Test
    void aFrameSplitAnywhereArrivesWholeBehindAPlainHeader() throws IOException {
        byte[] frame = frame(60, 1);
        byte[] stream = prefixed(frame);
        buffer.fill((byte) 0x77);
        int[] cuts = {0, 1, 3, 4, 5, 30, stream.length - 1};
        for (int i = 0; i < cuts.length; i++) {
            int end = i + 1 < cuts.length ? cuts[i + 1] : cuts[i];
            write(Arrays.copyOfRange(stream, cuts[i], end));
            assertThat(backend.receive(buffer)).as("after " + end + " of " + stream.length + " bytes").isZero();
        }
        write(Arrays.copyOfRange(stream, stream.length - 1, stream.length));
        int length = backend.receive(buffer);
        assertThat(length).isEqualTo(VirtioNetHeader.BYTES + frame.length);
        assertThat(Frames.frameOf(buffer, length)).isEqualTo(frame);
        assertThat(buffer.asSlice(0, 10).toArray(ValueLayout.JAVA_BYTE)).as("no offload asked").containsOnly(0);
        assertThat(VirtioNetHeader.numBuffers(buffer)).isEqualTo(1);
        assertThat(backend.receive(buffer)).isZero();
        assertThat(backend.dropped().toGuest()).isZero();
    }

    @Test
    void severalFramesInOneWriteComeOneByOne() throws IOException {
        byte[] a = frame(42, 2), b = frame(1514, 3), c = frame(14, 4);
        write(concat(prefixed(a), prefixed(b), prefixed(c)));
        for (byte[] expected : List.of(a, b, c)) {
            int length = backend.receive(buffer);
            assertThat(Frames.frameOf(buffer, length)).isEqualTo(expected);
        }
        assertThat(backend.receive(buffer)).isZero();
    }

    @Test
    void truncatedEmptyAndOversizedFramesAreSkippedAndCounted() throws IOException {
        byte[] good = frame(64, 5);
        write(concat(prefixed(frame(13, 6)), prefixed(new byte[0]), prefixed(frame(VirtioNetHeader.MAX_FRAME_BYTES + 1, 7))));
        write(prefixed(good));
        int length = backend.receive(buffer);
        assertThat(Frames.frameOf(buffer, length)).as("the stream is still in step").isEqualTo(good);
        assertThat(backend.dropped().toGuest()).isEqualTo(3);
        assertThat(backend.receive(buffer)).isZero();

        // A frame the largest allowed passes.
        byte[] largest = frame(VirtioNetHeader.MAX_FRAME_BYTES, 8);
        write(prefixed(largest));
        assertThat(Frames.frameOf(buffer, backend.receive(buffer))).isEqualTo(largest);
    }

    @Test
    void anOversizedFrameSplitAcrossWritesIsSkippedAsItArrives() throws IOException {
        byte[] huge = prefixed(frame(200_000, 9));
        write(Arrays.copyOfRange(huge, 0, 100_000));
        assertThat(backend.receive(buffer)).isZero();
        write(Arrays.copyOfRange(huge, 100_000, huge.length));
        byte[] good = frame(20, 10);
        write(prefixed(good));
        assertThat(Frames.frameOf(buffer, backend.receive(buffer))).isEqualTo(good);
        assertThat(backend.dropped().toGuest()).isEqualTo(1);
    }

    @Test
    void framesFromTheGuestGoOutPrefixedWithoutTheirHeader() throws IOException {
        byte[] frame = frame(98, 11);
        assertThat(Frames.send(backend, Frames.packet(arena, frame))).isTrue();
        assertThat(readExactly(4 + frame.length)).isEqualTo(prefixed(frame));
        assertThat(backend.dropped().fromGuest()).isZero();
    }

    @Test
    void framesAskingForOffloadsOrOfBadLengthsAreDroppedAndCounted() throws IOException {
        assertThat(backend.offloads()).isEmpty();
        assertThat(Frames.send(backend, Frames.packet(arena, frame(60, 12), VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 6))).isTrue();
        assertThat(Frames.send(backend, Frames.packet(arena, frame(13, 13)))).isTrue();
        assertThat(Frames.send(backend, Frames.packet(arena, frame(VirtioNetHeader.MAX_FRAME_BYTES + 1, 14)))).isTrue();
        assertThat(backend.dropped().fromGuest()).isEqualTo(3);
        byte[] good = frame(60, 15);
        assertThat(Frames.send(backend, Frames.packet(arena, good))).isTrue();
        assertThat(readExactly(4 + good.length)).as("nothing of the dropped ones went out").isEqualTo(prefixed(good));
        assertThatThrownBy(() -> backend.setReceiveOffloads(EnumSet.of(NetOffload.CHECKSUM)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("passt offers no offloads");
        backend.setReceiveOffloads(Set.of());
    }

    @Test
    void aFullSocketHoldsTheFrameUntilItIsWritableAndNothingIsSentTwice() throws IOException {
        peer.configureBlocking(false);
        List<byte[]> sent = new ArrayList<>();
        ByteArrayOutputStream received = new ByteArrayOutputStream();
        try (Poller poller = Poller.create(1)) {
            poller.add(backend.descriptor(), Poller.WRITABLE, 1);
            int refusals = 0;
            for (int i = 0; i < 64; i++) {
                byte[] frame = frame(60_000 + i, 16 + i);
                MemorySegment packet = Frames.packet(arena, frame);
                while (!Frames.send(backend, packet)) {
                    refusals++;
                    drain(received); // make room, then wait until the socket says so
                    assertThat(poller.await(-1)).isEqualTo(1);
                }
                sent.add(frame);
            }
            assertThat(refusals).as("the socket filled up at least once").isPositive();
        }
        peer.configureBlocking(true);
        while (received.size() < sent.stream().mapToInt(f -> 4 + f.length).sum()) {
            drain(received);
        }
        byte[] expected = concat(sent.stream().map(PasstFramingTest::prefixed).toArray(byte[][]::new));
        assertThat(received.toByteArray()).isEqualTo(expected);
    }

    @Test
    void thePeerClosingEndsTheBackendWithASentence() throws IOException {
        peer.close();
        assertThatThrownBy(() -> backend.receive(buffer)).isInstanceOf(NetBackendException.class)
                .hasMessageContaining("passt at ").hasMessageContaining("closed its connection");
    }

    @Test
    void refusesAReceiveBufferTooSmallForTheLargestFrame() {
        assertThatThrownBy(() -> backend.receive(arena.allocate(1600))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("needs " + NetBackend.RECEIVE_BUFFER_BYTES + " bytes");
    }

    @Test
    void connectingWhereNoPasstListensSaysHowToStartOne(@TempDir Path dir) {
        assertThatThrownBy(() -> PasstBackend.connect(dir.resolve("none.sock"))).isInstanceOf(NetBackendException.class)
                .hasMessageContaining("cannot connect to passt at").hasMessageContaining("ENOENT")
                .hasMessageContaining("passt --socket");
    }

    /** A frame of {@code length} bytes whose content depends on {@code seed}. */
    private static byte[] frame(int length, int seed) {
        byte[] frame = new byte[length];
        for (int i = 0; i < length; i++) frame[i] = (byte) (i * 31 + seed);
        return frame;
    }

    private static byte[] prefixed(byte[] frame) {
        return ByteBuffer.allocate(4 + frame.length).putInt(frame.length).put(frame).array();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) out.writeBytes(p);
        return out.toByteArray();
    }

    private void write(byte[] bytes) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        while (b.hasRemaining()) {
            peer.write(b);
            // a receive between writes lets a stream larger than the socket's buffer through
            if (b.hasRemaining()) backend.receive(buffer);
        }
    }

    private byte[] readExactly(int count) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(count + 1);
        while (b.position() < count) {
            peer.read(b);
        }
        peer.configureBlocking(false);
        peer.read(b); // anything more would be a frame too many
        peer.configureBlocking(true);
        assertThat(b.position()).as("bytes the backend wrote").isEqualTo(count);
        return Arrays.copyOf(b.array(), count);
    }

    private void drain(ByteArrayOutputStream into) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(1 << 20);
        peer.read(b);
        into.write(b.array(), 0, b.position());
    }
}
