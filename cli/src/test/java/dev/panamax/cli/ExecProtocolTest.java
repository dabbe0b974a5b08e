package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;

/** exec's frames: what the host sends, and every way a frame from the (untrusted) guest can be refused. */
class ExecProtocolTest {
    private static byte[] header(int type, int stream, int reserved, long length) {
        return new byte[] {(byte) type, (byte) stream, (byte) reserved, 0,
            (byte) length, (byte) (length >>> 8), (byte) (length >>> 16), (byte) (length >>> 24)};
    }

    private static InputStream stream(byte[]... parts) {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            all.writeBytes(p);
        }
        return new ByteArrayInputStream(all.toByteArray());
    }

    private static void assertMalformed(String expected, byte[]... parts) {
        assertThatThrownBy(() -> ExecProtocol.readGuestFrame(stream(parts)))
                .isInstanceOf(ExecProtocol.MalformedFrameException.class).hasMessageContaining(expected);
    }

    @Test
    void theGuestsFramesAreDecoded() throws IOException {
        byte[] hello = "hello".getBytes(StandardCharsets.US_ASCII);
        InputStream in = stream(ExecProtocol.frame(ExecProtocol.DATA, ExecProtocol.STDOUT, hello, 0, hello.length),
                ExecProtocol.frame(ExecProtocol.DATA, ExecProtocol.STDERR, hello, 1, 2),
                ExecProtocol.frame(ExecProtocol.DATA, ExecProtocol.STDOUT, hello, 0, 0),
                ExecProtocol.frame(ExecProtocol.EXIT, 0, new byte[] {0, 42}, 0, 2),
                ExecProtocol.frame(ExecProtocol.EXIT, 0, new byte[] {1, 9}, 0, 2),
                ExecProtocol.frame(ExecProtocol.ERROR, 0, hello, 0, 5));
        assertThat(ExecProtocol.readGuestFrame(in)).isInstanceOfSatisfying(ExecProtocol.Output.class, o -> {
            assertThat(o.stream()).isEqualTo(ExecProtocol.STDOUT);
            assertThat(o.bytes()).isEqualTo(hello);
        });
        assertThat(ExecProtocol.readGuestFrame(in)).isInstanceOfSatisfying(ExecProtocol.Output.class, o -> {
            assertThat(o.stream()).isEqualTo(ExecProtocol.STDERR);
            assertThat(new String(o.bytes(), StandardCharsets.US_ASCII)).isEqualTo("el");
        });
        assertThat(ExecProtocol.readGuestFrame(in)).isInstanceOfSatisfying(ExecProtocol.Output.class, o -> assertThat(o.bytes()).isEmpty());
        ExecProtocol.GuestFrame exited = ExecProtocol.readGuestFrame(in);
        assertThat(exited).isEqualTo(new ExecProtocol.Exited(42));
        assertThat(ExecProtocol.exitStatus(exited)).isEqualTo(42);
        ExecProtocol.GuestFrame signalled = ExecProtocol.readGuestFrame(in);
        assertThat(signalled).isEqualTo(new ExecProtocol.Signalled(9));
        assertThat(ExecProtocol.exitStatus(signalled)).isEqualTo(137);
        assertThat(ExecProtocol.readGuestFrame(in)).isEqualTo(new ExecProtocol.AgentError("hello"));
        assertThat(ExecProtocol.readGuestFrame(in)).as("the end between frames").isNull();
    }

    @Test
    void aLengthBeyondTheLimitIsRefusedBeforeAnyPayloadIsRead() {
        // Nothing follows the header: a decoder that trusted the length would allocate or wait for it.
        assertMalformed("65537 bytes (at most 65536)", header(ExecProtocol.DATA, ExecProtocol.STDOUT, 0, ExecProtocol.MAX_PAYLOAD + 1));
        assertMalformed("4294967295 bytes", header(ExecProtocol.DATA, ExecProtocol.STDERR, 0, 0xffffffffL));
        assertMalformed("3 bytes (at most 2)", header(ExecProtocol.EXIT, 0, 0, 3));
        assertMalformed("4097 bytes (at most 4096)", header(ExecProtocol.ERROR, 0, 0, ExecProtocol.MAX_ERROR_TEXT + 1));
    }

    @Test
    void framesTheGuestMayNotSendAreRefused() {
        assertMalformed("reserved bytes", header(ExecProtocol.DATA, ExecProtocol.STDOUT, 1, 0));
        assertMalformed("type 1, which the guest does not send", header(ExecProtocol.ARG, 0, 0, 0));
        assertMalformed("type 2, which the guest does not send", header(ExecProtocol.RUN, 0, 0, 0));
        assertMalformed("type 0", header(0, 0, 0, 0));
        assertMalformed("type 255", header(255, 0, 0, 0));
        assertMalformed("output on stream 0", header(ExecProtocol.DATA, ExecProtocol.STDIN, 0, 1), new byte[1]);
        assertMalformed("output on stream 3", header(ExecProtocol.DATA, 3, 0, 1), new byte[1]);
        assertMalformed("type 4 on stream 1", header(ExecProtocol.EXIT, 1, 0, 2), new byte[] {0, 0});
        assertMalformed("exit frame of 1 bytes", header(ExecProtocol.EXIT, 0, 0, 1), new byte[] {0});
        assertMalformed("kind 2", header(ExecProtocol.EXIT, 0, 0, 2), new byte[] {2, 0});
        assertMalformed("signal 0", header(ExecProtocol.EXIT, 0, 0, 2), new byte[] {1, 0});
        assertMalformed("signal 65", header(ExecProtocol.EXIT, 0, 0, 2), new byte[] {1, 65});
    }

    @Test
    void aConnectionEndingInsideAFrameIsMalformed() {
        assertMalformed("inside a frame's header", new byte[] {ExecProtocol.DATA, 1, 0});
        assertMalformed("inside a frame", header(ExecProtocol.DATA, ExecProtocol.STDOUT, 0, 10), new byte[4]);
    }

    @Test
    void theCommandIsOneArgFramePerArgumentThenRun() throws IOException {
        byte[] frames = ExecProtocol.command(List.of("sh", "-c", "echo 'a \"b\"'\n"));
        InputStream in = new ByteArrayInputStream(frames);
        for (String expected : List.of("sh", "-c", "echo 'a \"b\"'\n")) {
            byte[] h = in.readNBytes(ExecProtocol.HEADER_SIZE);
            assertThat(h[0]).isEqualTo((byte) ExecProtocol.ARG);
            assertThat(new String(in.readNBytes(h[4] & 0xff), StandardCharsets.UTF_8)).isEqualTo(expected);
        }
        assertThat(in.readAllBytes()).isEqualTo(header(ExecProtocol.RUN, 0, 0, 0));
    }

    @Test
    void commandsTheAgentWouldRefuseAreRefusedOnTheHost() {
        assertThatThrownBy(() -> ExecProtocol.command(List.of())).hasMessageContaining("no command");
        assertThatThrownBy(() -> ExecProtocol.command(List.of("echo", "a\0b"))).hasMessageContaining("NUL");
        assertThatThrownBy(() -> ExecProtocol.command(List.of("echo", "x".repeat(ExecProtocol.MAX_PAYLOAD + 1))))
                .hasMessageContaining("65537 bytes");
        assertThatThrownBy(() -> ExecProtocol.command(Collections.nCopies(ExecProtocol.MAX_ARGS + 1, "x")))
                .hasMessageContaining("1025 arguments");
        assertThatThrownBy(() -> ExecProtocol.command(Collections.nCopies(5, "x".repeat(ExecProtocol.MAX_PAYLOAD))))
                .hasMessageContaining("total 327685 bytes");
        assertThat(ExecProtocol.command(Collections.nCopies(ExecProtocol.MAX_ARGS, "x"))).hasSize(ExecProtocol.HEADER_SIZE * 1025 + 1024);
        assertThatThrownBy(() -> ExecProtocol.frame(ExecProtocol.DATA, 0, new byte[ExecProtocol.MAX_PAYLOAD + 1], 0,
                ExecProtocol.MAX_PAYLOAD + 1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void aWorkingDirectoryIsOneDirFrameBeforeRunAndOneTheAgentWouldRefuseIsRefusedHere() throws IOException {
        InputStream in = new ByteArrayInputStream(ExecProtocol.command(List.of("pwd"), "/home/ü"));
        in.readNBytes(ExecProtocol.HEADER_SIZE + 3); // ARG pwd
        byte[] h = in.readNBytes(ExecProtocol.HEADER_SIZE);
        assertThat(h[0]).isEqualTo((byte) ExecProtocol.DIR);
        assertThat(new String(in.readNBytes(h[4] & 0xff), StandardCharsets.UTF_8)).isEqualTo("/home/ü");
        assertThat(in.readAllBytes()).isEqualTo(header(ExecProtocol.RUN, 0, 0, 0));
        assertThatThrownBy(() -> ExecProtocol.command(List.of("pwd"), "")).hasMessageContaining("1 to 4095 bytes");
        assertThatThrownBy(() -> ExecProtocol.command(List.of("pwd"), "/a\0b")).hasMessageContaining("without a NUL");
        assertThatThrownBy(() -> ExecProtocol.command(List.of("pwd"), "/" + "d".repeat(ExecProtocol.MAX_DIR)))
                .hasMessageContaining("1 to 4095 bytes");
        assertThat(ExecProtocol.command(List.of("pwd"), "/" + "d".repeat(ExecProtocol.MAX_DIR - 1))).isNotEmpty();
    }
}
