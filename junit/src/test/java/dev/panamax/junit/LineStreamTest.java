package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class LineStreamTest {
    private final List<String> lines = new ArrayList<>();
    private final LineStream stream = new LineStream(lines::add);

    private void write(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        stream.write(b, 0, b.length);
    }

    @Test
    void consoleBytesBecomeLinesWithoutTheirEndsWhateverTheWrites() {
        write("[    0.000000] Linux version 6.1\r\npanamax: init ");
        write("reached\n\ncaf\u00e9");
        assertThat(lines).containsExactly("[    0.000000] Linux version 6.1", "panamax: init reached", "");
        stream.close();
        assertThat(lines).last().isEqualTo("caf\u00e9");
    }

    @Test
    void aLineWithoutAnEndIsPassedOnInPieces() {
        write("x".repeat(LineStream.MAX_LINE * 2 + 5));
        assertThat(lines).hasSize(2).allMatch(l -> l.length() == LineStream.MAX_LINE);
        stream.close();
        assertThat(lines).last().isEqualTo("xxxxx");
    }
}
