package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ExitTrailerTest {
    private final ByteArrayOutputStream output = new ByteArrayOutputStream();
    private final ExitTrailer trailer = new ExitTrailer("abc123", "t0k3n", output);

    private int feed(String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        return trailer.feed(b, 0, b.length);
    }

    @Test
    void passesOutputOnAndReadsTheStatusAfterIt() throws IOException {
        feed("hello\nworld\n\npanamax-rig-exit abc123 42\n");
        assertThat(output.toString(StandardCharsets.UTF_8)).isEqualTo("hello\nworld\n");
        assertThat(trailer.exitStatus()).isEqualTo(42);
    }

    @Test
    void findsTheTrailerAfterOutputWithoutANewline() throws IOException {
        feed("no newline");
        assertThat(trailer.exitStatus()).isNull();
        feed("\npanamax-rig-exit abc123 0\n");
        assertThat(output.toString(StandardCharsets.UTF_8)).isEqualTo("no newline");
        assertThat(trailer.exitStatus()).isZero();
    }

    @Test
    void findsTheTrailerSplitAcrossReadsByteByByte() throws IOException {
        for (char c : "x\n\npanamax-rig-exit abc123 137\n".toCharArray()) feed(String.valueOf(c));
        assertThat(output.toString(StandardCharsets.UTF_8)).isEqualTo("x\n");
        assertThat(trailer.exitStatus()).isEqualTo(137);
    }

    @Test
    void outputThatLooksLikeAnotherRunsTrailerIsOutput() throws IOException {
        String fake = "\npanamax-rig-exit other 1\n\npanamax-rig-exi\n";
        feed(fake);
        assertThat(trailer.exitStatus()).isNull();
        assertThat(output.toString(StandardCharsets.UTF_8)).isEqualTo(fake.substring(0, fake.length() - 1));
    }

    @Test
    void stopsConsumingAtTheEndOfTheTrailer() throws IOException {
        assertThat(feed("a\npanamax-rig-exit abc123 3\nleftover")).isEqualTo("a\npanamax-rig-exit abc123 3\n".length());
        assertThat(output.toString(StandardCharsets.UTF_8)).isEqualTo("a");
    }

    @Test
    void rejectsAGarbledStatus() {
        assertThatThrownBy(() -> feed("\npanamax-rig-exit abc123 4x\n")).isInstanceOf(IOException.class)
                .hasMessageContaining("malformed exit trailer");
    }

    @Test
    void takesThePingAnswersOutOfTheOutputWhereverTheyCome() throws IOException {
        feed("hal\npanamax-rig-alive t0k3n\nf a line\n\npanamax-rig-alive t0k3n\n\npanamax-rig-alive t0k3n\n");
        feed("\npanamax-rig-exit abc123 0\n");
        assertThat(output.toString(StandardCharsets.UTF_8)).isEqualTo("half a line\n");
        assertThat(trailer.exitStatus()).isZero();
    }

    @Test
    void findsPingAnswersSplitByteByByteBesideTheTrailer() throws IOException {
        for (char c : "x\npanamax-rig-alive t0k3n\ny\n\npanamax-rig-alive t0k3n\n\npanamax-rig-exit abc123 7\n".toCharArray()) {
            feed(String.valueOf(c));
        }
        assertThat(output.toString(StandardCharsets.UTF_8)).isEqualTo("xy\n");
        assertThat(trailer.exitStatus()).isEqualTo(7);
    }

    @Test
    void outputThatLooksLikeAPingAnswerIsOutput() throws IOException {
        String fake = "\npanamax-rig-alive other\n\npanamax-rig-alive t0k3\n\npanamax-rig-al";
        feed(fake);
        feed("!");
        assertThat(output.toString(StandardCharsets.UTF_8)).isEqualTo(fake + "!");
    }
}
