package dev.panamax.junit;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.guest.ExecAgent;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server's agents with the real guest agent, compiled as the initramfs build does and looped on
 * this host as /init loops it in the guest ({@link AgentLoop}): one agent after another, each serving a command.
 */
@Timeout(120) // guards against a hang only
class AgentPoolTest {
    @TempDir static Path tmp;
    private static ServerSocketChannel listener;
    private static AgentPool agents;
    private static AgentLoop loop;
    private static final CountDownLatch firstAgent = new CountDownLatch(1);

    @BeforeAll
    static void start() throws IOException {
        Path agent = ExecAgent.compile(Files.createDirectories(tmp.resolve("build")), tmp.resolve("panamax-agent"));
        Path socket = tmp.resolve("agent.sock");
        listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        listener.bind(UnixDomainSocketAddress.of(socket));
        agents = new AgentPool(listener, firstAgent::countDown);
        agents.start();
        loop = AgentLoop.start(agent, socket);
    }

    @AfterAll
    static void stop() {
        loop.close();
        agents.close();
    }

    private record Run(AgentPool.Outcome outcome, String stdout, String stderr) {}

    private static Run exec(Duration timeout, String... argv) throws InterruptedException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        AgentPool.Outcome o = agents.exec(List.of(argv), timeout, out, err);
        return new Run(o, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void oneAgentAfterAnotherRunsEachCommandWithItsStatusAndStreamsApart() throws InterruptedException {
        firstAgent.await();
        Run hello = exec(Duration.ofSeconds(60), "sh", "-c", "echo hello; echo oops >&2; echo world");
        assertThat(hello.outcome().status()).as(hello.outcome().failure()).hasValue(0);
        assertThat(hello.stdout()).isEqualTo("hello\nworld\n");
        assertThat(hello.stderr()).isEqualTo("oops\n");
        assertThat(exec(Duration.ofSeconds(60), "false").outcome().status()).hasValue(1);
        Run answer = exec(Duration.ofSeconds(60), "sh", "-c", "exit 42");
        assertThat(answer.outcome().status()).hasValue(42);
        assertThat(answer.outcome().timedOut()).isFalse();
        assertThat(exec(Duration.ofSeconds(60), "/no/such/program").outcome().status()).hasValue(127);
    }

    @Test
    void aCommandOutlivingItsTimeoutIsKilledAndTheNextAgentServesTheNextCommand() throws InterruptedException {
        Path marker = tmp.resolve("still-running");
        Run slow = exec(Duration.ofSeconds(1), "sh", "-c", "echo started; sleep 600; touch " + marker);
        assertThat(slow.outcome().timedOut()).isTrue();
        assertThat(slow.outcome().status()).isEmpty();
        Run after = exec(Duration.ofSeconds(60), "sh", "-c", "echo after");
        assertThat(after.outcome().status()).as(after.outcome().failure()).hasValue(0);
        assertThat(after.stdout()).isEqualTo("after\n");
        assertThat(Files.exists(marker)).isFalse();
    }

    @Test
    void aCommandTheAgentWouldRefuseIsAFailureNotAStatus() throws InterruptedException {
        Run nul = exec(Duration.ofSeconds(60), "echo", "a\0b");
        assertThat(nul.outcome().status()).isEmpty();
        assertThat(nul.outcome().timedOut()).isFalse();
        assertThat(nul.outcome().failure()).contains("NUL");
        assertThat(exec(Duration.ofSeconds(60), "true").outcome().status()).hasValue(0);
    }
}
