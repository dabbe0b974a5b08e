package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class RequestPipeTest {

    @Test
    void linesQueuedByAThreadThatEndedAreReadThenTheEnd() throws Exception {
        RequestPipe pipe = new RequestPipe();
        Thread writer = Thread.ofPlatform().start(() -> {
            pipe.send("EXEC 1 10 dHJ1ZQ==\n");
            pipe.send(GuestWire.QUIT);
        });
        writer.join(); // a PipedInputStream breaks once its writer has ended; this must not
        pipe.end();
        assertThat(new String(pipe.readAllBytes(), StandardCharsets.US_ASCII)).isEqualTo("EXEC 1 10 dHJ1ZQ==\nQUIT\n");
        assertThat(pipe.read()).isEqualTo(-1);
    }

    @Test
    void nothingIsTakenAfterTheEnd() throws IOException {
        RequestPipe pipe = new RequestPipe();
        pipe.end();
        assertThat(pipe.send("EXEC 1 10 dHJ1ZQ==\n")).isFalse();
        assertThat(pipe.read(new byte[8], 0, 8)).isEqualTo(-1);
    }
}
