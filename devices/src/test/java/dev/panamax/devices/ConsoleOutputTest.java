package dev.panamax.devices;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

class ConsoleOutputTest {

    private final ByteArrayOutputStream stream = new ByteArrayOutputStream();
    private final ConsoleOutput console = new ConsoleOutput(stream);

    private void transmit(ConsoleOutput to, String text) {
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            to.transmitted(b);
        }
    }

    @Test
    void bytesReachTheStreamAtEachLineEndAndWhenTheGuestPauses() {
        transmit(console, "hello");
        assertThat(stream.size()).as("buffered until a line ends").isZero();
        transmit(console, "\n/ # ");
        assertThat(stream.toString(StandardCharsets.US_ASCII)).isEqualTo("hello\n");
        console.transmitPaused();
        assertThat(stream.toString(StandardCharsets.US_ASCII)).isEqualTo("hello\n/ # ");
        assertThat(console.bytesWritten()).isEqualTo(10);
    }

    @Test
    void longOutputWithoutNewlineIsWrittenWhenTheBufferFills() {
        transmit(console, "a".repeat(10_000));
        assertThat(stream.size()).isGreaterThanOrEqualTo(8192).isLessThan(10_000);
        assertThat(console.bytesWritten()).isEqualTo(stream.size());
        console.flush();
        assertThat(stream.size()).isEqualTo(10_000);
        assertThat(console.bytesWritten()).isEqualTo(10_000);
    }

    @Test
    void streamFailuresAreCountedAndTheirBytesDropped() {
        List<String> written = new ArrayList<>();
        boolean[] failing = {true};
        OutputStream flaky = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                if (failing[0]) {
                    throw new IOException("broken pipe");
                }
                written.add(new String(b, off, len, StandardCharsets.US_ASCII));
            }
        };
        ConsoleOutput flakyConsole = new ConsoleOutput(flaky);
        transmit(flakyConsole, "lost\n");
        failing[0] = false;
        transmit(flakyConsole, "kept\n");
        assertThat(flakyConsole.outputErrors()).isEqualTo(1);
        assertThat(flakyConsole.droppedBytes()).isEqualTo(5);
        assertThat(flakyConsole.bytesWritten()).isEqualTo(5);
        assertThat(written).containsExactly("kept\n");
    }

    @Test
    void lineListenersSeeCompleteLinesWithoutLineEnds() {
        List<String> lines = new CopyOnWriteArrayList<>();
        console.addLineListener(lines::add);
        console.addLineListener(l -> {
            throw new IllegalStateException("a broken watcher");
        });
        transmit(console, "Booting\r\nKernel panic - not syncing: x\npartial");
        assertThat(lines).containsExactly("Booting", "Kernel panic - not syncing: x");
        assertThat(console.listenerErrors()).isEqualTo(2);
        transmit(console, "y".repeat(ConsoleOutput.MAX_LINE + 10));
        assertThat(lines).hasSize(3);
        assertThat(lines.get(2)).startsWith("partial").hasSize(ConsoleOutput.MAX_LINE);
        transmit(console, "\n");
        assertThat(lines.get(3)).isEqualTo("y".repeat(17));
    }

    @Test
    void theFirstPanicLineIsKept() {
        transmit(console, "[    0.5] ok\n");
        assertThat(console.panic()).isEmpty();
        transmit(console, "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs  \r\n");
        transmit(console, "[    1.1] Kernel panic - not syncing: again\n");
        assertThat(console.panic()).hasValue("[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs");
    }

    @Test
    void withoutAStreamBytesAreDiscardedButLinesStillArrive() {
        ConsoleOutput silent = new ConsoleOutput(null);
        List<String> lines = new ArrayList<>();
        silent.addLineListener(lines::add);
        transmit(silent, "one\ntwo\n");
        assertThat(lines).containsExactly("one", "two");
        assertThat(silent.bytesWritten()).isEqualTo(8);
    }
}
