package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.guest.ExecAgent;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * exec's host side ({@link ExecSession}) with the real guest agent, compiled as the initramfs build
 * does and run on this host over a Unix socket ({@code panamax-agent unix PATH}) instead of vsock.
 */
@Timeout(120) // guards against a hang only
class ExecAgentTest {
    @TempDir static Path tmp;
    private static Path agent;

    @BeforeAll
    static void compile() throws IOException {
        agent = ExecAgent.compile(Files.createDirectories(tmp.resolve("build")), tmp.resolve("panamax-agent"));
    }

    private record Run(ExecSession.Result result, String stdout, String stderr, int agentStatus, String agentStderr) {}

    private static int sockets;

    /** Starts the agent on a new socket; {@code host} talks to it, then the agent's own end is awaited. */
    private static Run withAgent(SessionBody host) throws Exception {
        return withAgent(null, host);
    }

    /** {@link #withAgent(SessionBody)} with the agent's ROOT argument, when not null. */
    private static Run withAgent(Path root, SessionBody host) throws Exception {
        Path socket = tmp.resolve("s" + sockets++);
        try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            listener.bind(UnixDomainSocketAddress.of(socket));
            List<String> agentArgv = new java.util.ArrayList<>(List.of(agent.toString(), "unix", socket.toString()));
            if (root != null) {
                agentArgv.add(root.toString());
            }
            Process p = new ProcessBuilder(agentArgv).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            ExecSession.Result result;
            try (SocketChannel channel = listener.accept()) {
                result = host.talk(channel, out, err);
            }
            String agentStderr = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
            return new Run(result, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8), p.exitValue(), agentStderr);
        }
    }

    private interface SessionBody {
        ExecSession.Result talk(SocketChannel channel, ByteArrayOutputStream out, ByteArrayOutputStream err) throws IOException;
    }

    private static Run exec(InputStream stdin, String... argv) throws Exception {
        return withAgent((channel, out, err) -> new ExecSession(channel, out, err).run(List.of(argv), stdin));
    }

    @Test
    void statusStdoutAndStderrComeBackApart() throws Exception {
        Run r = exec(null, "sh", "-c", "echo out; echo err >&2; echo more-out; exit 42");
        assertThat(r.result().status()).hasValue(42);
        assertThat(r.stdout()).isEqualTo("out\nmore-out\n");
        assertThat(r.stderr()).isEqualTo("err\n");
        assertThat(r.agentStatus()).as(r.agentStderr()).isZero();
        assertThat(exec(null, "true").result().status()).hasValue(0);
        assertThat(exec(null, "false").result().status()).hasValue(1);
    }

    @Test
    void argumentsArriveAsTheyAreWhateverTheirBytes() throws Exception {
        Run r = exec(null, "printf", "[%s]\\n", "a b", "\"quoted\"", "new\nline", "", "ünï");
        assertThat(r.stdout()).isEqualTo("[a b]\n[\"quoted\"]\n[new\nline]\n[]\n[ünï]\n");
    }

    @Test
    void aSignalGives128PlusItsNumber() throws Exception {
        assertThat(exec(null, "sh", "-c", "kill -TERM $$").result().status()).hasValue(128 + 15);
    }

    @Test
    void aCommandThatCannotRunIs127Or126WithTheReasonOnStderr() throws Exception {
        Run missing = exec(null, "/no/such/program");
        assertThat(missing.result().status()).hasValue(127);
        assertThat(missing.stderr()).contains("cannot run /no/such/program");
        Path plain = Files.writeString(tmp.resolve("not-executable"), "echo hi\n");
        assertThat(exec(null, plain.toString()).result().status()).hasValue(126);
    }

    @Test
    void theCommandRunsInTheDirectoryTheHostNamesAndOneItCannotEnterIs126() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("work dir"));
        Run inDir = withAgent((channel, out, err) -> new ExecSession(channel, out, err).run(List.of("pwd"), dir.toString(), null));
        assertThat(inDir.stdout()).isEqualTo(dir + "\n");
        assertThat(exec(null, "pwd").stdout()).as("without a directory").isEqualTo("/\n");
        Run missing = withAgent((channel, out, err) -> new ExecSession(channel, out, err).run(List.of("pwd"), "/no/such/dir", null));
        assertThat(missing.result().status()).hasValue(126);
        assertThat(missing.stderr()).contains("cannot change to the directory /no/such/dir: No such file or directory");
    }

    /** exec --rootfs host: the agent stays in the initramfs and runs the command in the overlay's root. */
    @Test
    void withARootTheCommandSeesThatRootAndItsDirectoryInsideIt() throws Exception {
        Path root = Files.createDirectories(tmp.resolve("root"));
        Files.createDirectories(root.resolve("bin"));
        Files.copy(agent, root.resolve("bin/tool")); // static: it runs in a root with nothing else
        // "./tool" only exists relative to /bin of the new root; the tool without arguments prints its usage and exits 2.
        Run r = withAgent(root, (channel, out, err) -> new ExecSession(channel, out, err).run(List.of("./tool"), "/bin", null));
        assertThat(r.result().status()).hasValue(2);
        assertThat(r.stderr()).startsWith("usage: panamax-agent");
        Run outside = withAgent(root, (channel, out, err) -> new ExecSession(channel, out, err).run(List.of("pwd"), null, null));
        assertThat(outside.result().status()).as("the host's pwd is not in the new root").hasValue(127);
    }

    @Test
    void stdinIsForwardedToItsEnd() throws Exception {
        byte[] input = new byte[300_000]; // more than a pipe and a frame hold: the agent must pace it
        new Random(17).nextBytes(input);
        Run r = withAgent((channel, out, err) -> new ExecSession(channel, out, err).run(List.of("sha256sum"),
                new ByteArrayInputStream(input)));
        Process local = new ProcessBuilder("sha256sum").start();
        local.getOutputStream().write(input);
        local.getOutputStream().close();
        assertThat(r.stdout()).isEqualTo(new String(local.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
        assertThat(r.result().status()).hasValue(0);
    }

    @Test
    void aCommandThatIgnoresStdinStillEnds() throws Exception {
        Run r = withAgent((channel, out, err) -> new ExecSession(channel, out, err).run(List.of("echo", "ok"),
                new ByteArrayInputStream(new byte[1 << 20])));
        assertThat(r.stdout()).isEqualTo("ok\n");
        assertThat(r.result().status()).hasValue(0);
    }

    @Test
    void aBackgroundProcessHoldingTheOutputDoesNotHoldTheStatus() throws Exception {
        Run r = exec(null, "sh", "-c", "sleep 987.654 & echo started; exit 7");
        assertThat(r.result().status()).hasValue(7);
        assertThat(r.stdout()).isEqualTo("started\n");
        Process pgrep = new ProcessBuilder("pgrep", "-f", "sleep 987.654").start();
        assertThat(pgrep.waitFor()).as("pgrep finds no process: the agent killed what the command left running").isEqualTo(1);
    }

    @Test
    void aMalformedRequestGetsTheAgentsErrorAndEndsIt() throws Exception {
        Run r = withAgent((channel, out, err) -> {
            channel.write(ByteBuffer.wrap(new byte[] {ExecProtocol.ARG, 0, 7, 0, 0, 0, 0, 0})); // reserved byte set
            ExecProtocol.GuestFrame answer = ExecProtocol.readGuestFrame(Channels.newInputStream(channel));
            assertThat(answer).isInstanceOfSatisfying(ExecProtocol.AgentError.class,
                    e -> assertThat(e.text()).contains("reserved bytes"));
            return ExecSession.Result.failed("refused");
        });
        assertThat(r.agentStatus()).isEqualTo(1);
        Run tooLong = withAgent((channel, out, err) -> {
            channel.write(ByteBuffer.wrap(new byte[] {ExecProtocol.ARG, 0, 0, 0, 1, 0, 1, 0})); // 65537 bytes
            ExecProtocol.GuestFrame answer = ExecProtocol.readGuestFrame(Channels.newInputStream(channel));
            assertThat(answer).isInstanceOfSatisfying(ExecProtocol.AgentError.class, e -> assertThat(e.text()).contains("65537 bytes"));
            return ExecSession.Result.failed("refused");
        });
        assertThat(tooLong.agentStatus()).isEqualTo(1);
    }
}
