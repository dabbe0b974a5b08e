package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class ServerOutputTest {
    private final List<GuestWire.ServerMessage> got = new ArrayList<>();
    private final ServerOutput output = new ServerOutput(got::add);

    private void write(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        output.write(b, 0, b.length);
    }

    @Test
    void aMessageCountsAtItsEndMarkWithoutWaitingForTheNewline() {
        // The rig holds a newline back until the next byte: the message must not wait for it.
        String done = GuestWire.encode(new GuestWire.Done(1, 42, false, 10, ""));
        write(done.substring(0, done.length() - 1));
        assertThat(got).containsExactly(new GuestWire.Done(1, 42, false, 10, ""));
        write("\n");
        assertThat(got).hasSize(1);
    }

    @Test
    void messagesSplitAnyWhereAcrossWritesAndNoiseBetweenThem() {
        String all = "Picked up JAVA_TOOL_OPTIONS: -Xx\n" + GuestWire.encode(new GuestWire.Ready())
                + GuestWire.encode(new GuestWire.Console("boot; done")) + "a stray line\n";
        for (char c : all.toCharArray()) write(String.valueOf(c));
        assertThat(got).containsExactly(new GuestWire.Log("Picked up JAVA_TOOL_OPTIONS: -Xx"), new GuestWire.Ready(),
                new GuestWire.Console("boot; done"), new GuestWire.Log("a stray line"));
    }

    @Test
    void aMalformedMessageIsLoggedNotActedOn() {
        write(GuestWire.MARK + "DONE 1 999 0 1 ;\n");
        assertThat(got).hasSize(1);
        assertThat(got.getFirst()).isInstanceOf(GuestWire.Log.class);
        assertThat(((GuestWire.Log) got.getFirst()).line()).contains("malformed", "an exit status of 999");
    }

    @Test
    void anOverlongLineIsDroppedAndTheNextLineStillCounts() {
        write("x".repeat(GuestWire.MAX_LINE + 10) + "\n");
        write(GuestWire.encode(new GuestWire.Ready()));
        assertThat(got).hasSize(2);
        assertThat(((GuestWire.Log) got.getFirst()).line()).contains("dropped");
        assertThat(got.getLast()).isEqualTo(new GuestWire.Ready());
    }

    @Test
    void closingPassesOnAnUnfinishedLine() {
        write("the JVM crashed mid-li");
        output.close();
        assertThat(got).containsExactly(new GuestWire.Log("the JVM crashed mid-li"));
    }
}
