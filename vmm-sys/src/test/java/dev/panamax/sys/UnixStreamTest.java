package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

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
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class UnixStreamTest {
    private Path path;
    private ServerSocketChannel server;
    private Arena arena;

    @BeforeEach
    void listen(@TempDir Path dir) throws IOException {
        path = dir.resolve("s");
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX).bind(UnixDomainSocketAddress.of(path));
        arena = Arena.ofConfined();
    }

    @AfterEach
    void close() throws IOException {
        server.close();
        arena.close();
    }

    @Test
    void movesBytesBothWaysAndReportsAnEmptySocketAndTheEndOfTheStream() throws IOException {
        MemorySegment buffer = arena.allocate(16);
        try (UnixStream stream = UnixStream.connect(path); SocketChannel peer = server.accept()) {
            assertThat(stream.path()).isEqualTo(path);
            assertThat(stream.read(buffer, 16)).isEqualTo(UnixStream.NOTHING);

            peer.write(ByteBuffer.wrap(new byte[] {1, 2, 3, 4, 5}));
            assertThat(stream.read(buffer, 3)).as("no more than asked for").isEqualTo(3);
            assertThat(buffer.asSlice(0, 3).toArray(ValueLayout.JAVA_BYTE)).containsExactly(1, 2, 3);
            assertThat(stream.read(buffer, 16)).isEqualTo(2);
            assertThat(buffer.asSlice(0, 2).toArray(ValueLayout.JAVA_BYTE)).containsExactly(4, 5);

            buffer.copyFrom(MemorySegment.ofArray(new byte[] {9, 8, 7, 6}));
            assertThat(stream.write(buffer, 3)).isEqualTo(3);
            ByteBuffer received = ByteBuffer.allocate(8);
            peer.read(received);
            assertThat(received.flip().remaining()).isEqualTo(3);
            assertThat(received.get(0)).isEqualTo((byte) 9);

            peer.shutdownOutput(); // the peer closes its side
            assertThat(stream.read(buffer, 16)).isEqualTo(UnixStream.END);
        }
    }

    @Test
    void aFullSocketTakesNothingMore() throws IOException {
        MemorySegment chunk = arena.allocate(65536);
        try (UnixStream stream = UnixStream.connect(path); SocketChannel peer = server.accept()) {
            long written = 0;
            int n;
            while ((n = stream.write(chunk, (int) chunk.byteSize())) > 0) {
                written += n;
            }
            assertThat(n).isZero();
            assertThat(written).isPositive();
            ByteBuffer sink = ByteBuffer.allocate(65536);
            peer.read(sink);
            assertThat(stream.write(chunk, 1)).as("room again once the peer read").isEqualTo(1);
        }
    }

    @Test
    void connectingWhereNothingListensNamesThePathAndErrno(@TempDir Path dir) {
        Path missing = dir.resolve("nobody-here");
        assertThatThrownBy(() -> UnixStream.connect(missing)).isInstanceOf(NativeCallException.class)
                .hasMessageContaining("connect(" + missing + ")").hasMessageContaining("ENOENT");
        assertThat(UnixStream.connectIfListening(missing)).as("nobody there yet").isNull();
        try (UnixStream stream = UnixStream.connectIfListening(path)) {
            assertThat(stream).as("the listening socket of @BeforeEach").isNotNull();
        }
        Path tooLong = dir.resolve("x".repeat(120));
        assertThatThrownBy(() -> UnixStream.connect(tooLong)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("longer than the 107 bytes");
    }
}
