package dev.panamax.control;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The API client against a server that answers before it has read the whole request. */
class ApiClientTest {
    @TempDir Path dir;

    @Test
    void anAnswerSentBeforeTheBodyWasReadIsReturnedNotTheBrokenPipe() throws Exception {
        Path socket = dir.resolve("api.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(socket));
            CompletableFuture<Void> refuser = CompletableFuture.runAsync(() -> {
                try (SocketChannel c = server.accept()) {
                    c.read(ByteBuffer.allocate(1024)); // the head, and none of the body
                    c.write(ByteBuffer.wrap(("HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nConnection: close\r\n"
                            + "Content-Length: 2\r\n\r\n{}").getBytes(StandardCharsets.US_ASCII)));
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
            // Far more than the socket buffers hold: the client is still writing when the server closes.
            String body = "{\"kernel_image_path\": \"" + "x".repeat(16 << 20) + "\"}";
            ApiClient.Response r = new ApiClient(socket).send("PUT", "/boot-source", body);
            refuser.join();
            assertThat(r.status()).isEqualTo(413);
        }
    }
}
