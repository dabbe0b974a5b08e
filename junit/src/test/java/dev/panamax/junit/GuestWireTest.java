package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class GuestWireTest {

    private static GuestWire.ServerMessage roundTrip(GuestWire.ServerMessage m) {
        String line = GuestWire.encode(m);
        assertThat(line).startsWith(GuestWire.MARK).endsWith(GuestWire.END + "\n");
        assertThat(line.substring(0, line.length() - 2).indexOf(GuestWire.END)).as("the end mark appears once, at the end").isEqualTo(-1);
        return GuestWire.decode(line.substring(GuestWire.MARK.length(), line.length() - 2));
    }

    @Test
    void everyServerMessageComesBackAsItWent() {
        assertThat(roundTrip(new GuestWire.Ready())).isEqualTo(new GuestWire.Ready());
        assertThat(roundTrip(new GuestWire.Console("[    0.1] a; line \u00e9"))).isEqualTo(new GuestWire.Console("[    0.1] a; line \u00e9"));
        assertThat(roundTrip(new GuestWire.Log("WARNING: x; y"))).isEqualTo(new GuestWire.Log("WARNING: x; y"));
        GuestWire.Output out = (GuestWire.Output) roundTrip(new GuestWire.Output(7, 2, new byte[] {0, ';', '\n', (byte) 0xff}));
        assertThat(out.id()).isEqualTo(7);
        assertThat(out.stream()).isEqualTo(2);
        assertThat(out.bytes()).containsExactly(0, ';', '\n', 0xff);
        assertThat(((GuestWire.Output) roundTrip(new GuestWire.Output(1, 1, "x".getBytes(StandardCharsets.UTF_8)))).stream()).isEqualTo(1);
        assertThat(roundTrip(new GuestWire.Done(3, 42, false, 123456789L, ""))).isEqualTo(new GuestWire.Done(3, 42, false, 123456789L, ""));
        assertThat(roundTrip(new GuestWire.Done(4, -1, true, 5, "no agent"))).isEqualTo(new GuestWire.Done(4, -1, true, 5, "no agent"));
        assertThat(roundTrip(new GuestWire.Ended("the guest ended: RESET"))).isEqualTo(new GuestWire.Ended("the guest ended: RESET"));
    }

    @Test
    void malformedServerMessagesAreRefused() {
        assertThatThrownBy(() -> GuestWire.decode("HELLO")).hasMessageContaining("unknown message HELLO");
        assertThatThrownBy(() -> GuestWire.decode("READY x")).hasMessageContaining("READY with 1 fields, not 0");
        assertThatThrownBy(() -> GuestWire.decode("DONE 1 256 0 5 ")).hasMessageContaining("an exit status of 256");
        assertThatThrownBy(() -> GuestWire.decode("DONE 1 -2 0 5 ")).hasMessageContaining("an exit status of -2");
        assertThatThrownBy(() -> GuestWire.decode("DONE -1 0 0 5 ")).hasMessageContaining("an id of -1");
        assertThatThrownBy(() -> GuestWire.decode("DONE 1 0 2 5 ")).hasMessageContaining("a flag of 2");
        assertThatThrownBy(() -> GuestWire.decode("DONE 1 0 0 -5 ")).hasMessageContaining("a duration of -5");
        assertThatThrownBy(() -> GuestWire.decode("OUT 1 not*base64")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> GuestWire.decode("OUT 1")).hasMessageContaining("OUT with 1 fields, not 2");
    }

    @Test
    void aRequestCarriesEveryArgumentWhole() {
        List<String> argv = List.of("sh", "-c", "printf '%s\\n' \"$@\"", "two words", "new\nline", "", "caf\u00e9 ;");
        String line = GuestWire.encode(new GuestWire.ExecRequest(9, 60_000, argv));
        assertThat(line).endsWith("\n").doesNotContain(";");
        assertThat(line.strip().lines()).hasSize(1);
        assertThat(GuestWire.decodeExec(line.strip())).isEqualTo(new GuestWire.ExecRequest(9, 60_000, argv));
    }

    @Test
    void malformedRequestsAreRefused() {
        assertThatThrownBy(() -> GuestWire.decodeExec("EXEC 1 1000")).hasMessageContaining("not an EXEC request");
        assertThatThrownBy(() -> GuestWire.decodeExec("RUN 1 1000 dHJ1ZQ==")).hasMessageContaining("not an EXEC request");
        assertThatThrownBy(() -> GuestWire.decodeExec("EXEC 1 0 dHJ1ZQ==")).hasMessageContaining("a timeout must be positive");
        assertThatThrownBy(() -> GuestWire.decodeExec("EXEC 1 soon dHJ1ZQ==")).hasMessageContaining("a timeout of soon ms");
        assertThatThrownBy(() -> GuestWire.decodeExec("EXEC x 1000 dHJ1ZQ==")).hasMessageContaining("an id of x");
        assertThatThrownBy(() -> new GuestWire.ExecRequest(1, 1000, List.of())).hasMessageContaining("no command");
    }

    @Test
    void aResetRequestComesBackAsItWentAndMalformedOnesAreRefused() {
        String line = GuestWire.encode(new GuestWire.ResetRequest(5, 30_000));
        assertThat(line).isEqualTo("RESET 5 30000\n");
        assertThat(GuestWire.isReset(line.strip())).isTrue();
        assertThat(GuestWire.isReset("EXEC 1 1000 dHJ1ZQ==")).isFalse();
        assertThat(GuestWire.decodeReset(line.strip())).isEqualTo(new GuestWire.ResetRequest(5, 30_000));
        assertThatThrownBy(() -> GuestWire.decodeReset("RESET 5")).hasMessageContaining("not a RESET request");
        assertThatThrownBy(() -> GuestWire.decodeReset("RESET 5 1000 x")).hasMessageContaining("not a RESET request");
        assertThatThrownBy(() -> GuestWire.decodeReset("RESET 5 0")).hasMessageContaining("a timeout must be positive");
        assertThatThrownBy(() -> GuestWire.decodeReset("RESET -5 1000")).hasMessageContaining("an id of -5");
        assertThatThrownBy(() -> GuestWire.decodeReset("RESET 5 later")).hasMessageContaining("a timeout of later ms");
    }
}
