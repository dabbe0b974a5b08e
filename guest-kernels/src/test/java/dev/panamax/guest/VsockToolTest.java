package dev.panamax.guest;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The guest's /bin/vsock, compiled as the initramfs build does and run on the host. Its vsock paths
 * need a vsock peer (this host's CID 2 is the machine it runs in, not ours to call), so the relay
 * itself is tested through a harness that runs it over a Unix socket whose other end is this test.
 */
class VsockToolTest {
    /** Only guards against a hung relay (the test would otherwise never end); not a speed expectation. */
    private static final long HANG_GUARD_SECONDS = 120;
    private static final String USAGE = "usage: vsock connect CID PORT";

    /** One thread per blocking stream (stdin, stdout, stderr of a run): a bounded pool could stall them. */
    private static final Executor STREAMS = Executors.newThreadPerTaskExecutor(Thread.ofPlatform().daemon().factory());

    @TempDir static Path tmp;
    private static Path tool;
    private static Path harness;

    @BeforeAll
    static void compile() throws IOException {
        tool = VsockTool.compile(Files.createDirectories(tmp.resolve("tool")), tmp.resolve("vsock"));
        Path dir = Files.createDirectories(tmp.resolve("harness"));
        VsockTool.writeSource(dir, VsockTool.SOURCE_RESOURCE, VsockTool.source());
        Files.writeString(dir.resolve("harness.c"), Resources.text(VsockToolTest.class, "vsock-relay-harness.c"));
        harness = dir.resolve("harness");
        HostCommand.run(dir, List.of("gcc", "-Os", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o", harness.toString(),
                "harness.c"), line -> {});
    }

    private record Result(int status, String stdout, String stderr) {}

    private static Result run(String... args) throws Exception {
        List<String> argv = new ArrayList<>(List.of(tool.toString()));
        argv.addAll(List.of(args));
        Process p = new ProcessBuilder(argv).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
        CompletableFuture<byte[]> out = readAll(p.getInputStream());
        CompletableFuture<byte[]> err = readAll(p.getErrorStream());
        int status = waitFor(p);
        return new Result(status, new String(out.get(), StandardCharsets.UTF_8), new String(err.get(), StandardCharsets.UTF_8));
    }

    @Test
    void isAStaticExecutable() throws IOException {
        assertThat(ElfFile.programHeaderTypes(Files.readAllBytes(tool))).isNotEmpty().doesNotContain(ElfFile.PT_INTERP, ElfFile.PT_DYNAMIC);
        assertThat(Files.isExecutable(tool)).isTrue();
    }

    @Test
    void badArgumentsExitWithStatus2AndOneLineNamingTheProblem() throws Exception {
        String[][] cases = {
            {}, {"frobnicate"}, {"connect"}, {"connect", "2"}, {"connect", "2", "5000", "extra"}, {"connect", "two", "5000"},
            {"connect", "2", "-1"}, {"connect", "2", "+5"}, {"connect", "2", " 5"}, {"connect", "4294967295", "5"},
            {"connect", "2", "99999999999"}, {"listen"}, {"listen", "x"}, {"listen", "1", "2"}, {"listen", "-k", "5000"},
            {"listen", "-k", "5000", "--"}, {"listen", "-k", "5000", "sh", "-c"}, {"cid", "1"},
        };
        for (String[] args : cases) {
            Result r = run(args);
            assertThat(r.status()).as("vsock %s", String.join(" ", args)).isEqualTo(2);
            assertThat(r.stdout()).as("vsock %s", String.join(" ", args)).isEmpty();
            assertThat(r.stderr()).as("vsock %s", String.join(" ", args)).startsWith("vsock: ").contains(USAGE).hasLineCount(1);
        }
    }

    @Test
    void helpPrintsTheUsage() throws Exception {
        Result r = run("--help");
        assertThat(r.status()).isZero();
        assertThat(r.stdout()).startsWith(USAGE).contains("vsock listen -k PORT -- CMD").contains("vsock cid");
    }

    @Test
    void endOfStdinHalfClosesTheConnectionAndTheReplyStillComesBack() throws Exception {
        // The peer reads to the end before it replies: it sees that end only through the relay's
        // shutdown(SHUT_WR), as the relay cannot end before the reply has come.
        relayThroughPeer(false);
    }

    @Test
    void relaysBothWaysAtOnce() throws Exception {
        // The peer sends all of its reply before it reads anything: a relay that blocked on one
        // direction would never take the reply while its own sending stalls.
        relayThroughPeer(true);
    }

    private void relayThroughPeer(boolean replyFirst) throws Exception {
        byte[] request = randomBytes(1, 3 << 20);
        byte[] reply = randomBytes(2, 3 << 20);
        try (ServerSocketChannel server = listen()) {
            Process p = startHarness(server);
            CompletableFuture<byte[]> stdout = readAll(p.getInputStream());
            CompletableFuture<byte[]> stderr = readAll(p.getErrorStream());
            CompletableFuture<Void> stdin = CompletableFuture.runAsync(() -> writeAndClose(p.getOutputStream(), request), STREAMS);
            CompletableFuture<byte[]> received = CompletableFuture.supplyAsync(() -> {
                try (SocketChannel peer = server.accept()) {
                    if (replyFirst) send(peer, reply);
                    byte[] all = readToEnd(peer);
                    if (!replyFirst) send(peer, reply);
                    return all;
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }, STREAMS);
            try {
                assertThat(received.get(HANG_GUARD_SECONDS, TimeUnit.SECONDS)).isEqualTo(request);
            } catch (TimeoutException e) {
                p.destroyForcibly(); // the relay hangs; ending it also ends the peer's read
                throw new AssertionError("the peer saw no end of the request within " + HANG_GUARD_SECONDS + " s: the relay hangs", e);
            }
            stdin.get();
            assertThat(waitFor(p)).as("stderr: %s", new String(stderr.get(), StandardCharsets.UTF_8)).isZero();
            assertThat(stdout.get()).isEqualTo(reply);
            assertThat(stderr.get()).isEmpty();
        }
    }

    private static void send(SocketChannel peer, byte[] data) throws IOException {
        for (ByteBuffer b = ByteBuffer.wrap(data); b.hasRemaining(); ) peer.write(b);
        peer.shutdownOutput();
    }

    @Test
    void aPeerThatGoesAwayEndsTheRelayWithStatus1AndOneLine() throws Exception {
        try (ServerSocketChannel server = listen()) {
            Process p = startHarness(server);
            CompletableFuture<byte[]> stdout = readAll(p.getInputStream());
            CompletableFuture<byte[]> stderr = readAll(p.getErrorStream());
            server.accept().close();
            // Stdin stays open: the relay still has data to send to a connection that is gone.
            OutputStream stdin = p.getOutputStream();
            stdin.write("after the peer left\n".getBytes(StandardCharsets.UTF_8));
            stdin.flush();
            int status = waitFor(p);
            stdin.close();
            String err = new String(stderr.get(), StandardCharsets.UTF_8);
            assertThat(status).as("stderr: %s", err).isEqualTo(1);
            assertThat(err).startsWith("vsock: stdin to the connection: ").hasLineCount(1);
            assertThat(stdout.get()).isEmpty();
        }
    }

    private static ServerSocketChannel listen() throws IOException {
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        Path socket = tmp.resolve("peer-" + System.nanoTime() + ".sock");
        server.bind(UnixDomainSocketAddress.of(socket));
        return server;
    }

    private static Process startHarness(ServerSocketChannel server) throws IOException {
        Path socket = ((UnixDomainSocketAddress) server.getLocalAddress()).getPath();
        return new ProcessBuilder(harness.toString(), socket.toString()).start();
    }

    private static byte[] randomBytes(long seed, int length) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static byte[] readToEnd(SocketChannel channel) throws IOException {
        java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream();
        ByteBuffer buffer = ByteBuffer.allocate(1 << 16);
        while (channel.read(buffer.clear()) >= 0) all.write(buffer.array(), 0, buffer.position());
        return all.toByteArray();
    }

    private static CompletableFuture<byte[]> readAll(InputStream in) {
        return CompletableFuture.supplyAsync(() -> {
            try (in) {
                return in.readAllBytes();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }, STREAMS);
    }

    private static void writeAndClose(OutputStream out, byte[] data) {
        try (out) {
            out.write(data);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static int waitFor(Process p) throws InterruptedException, ExecutionException, TimeoutException {
        if (!p.waitFor(HANG_GUARD_SECONDS, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new TimeoutException("vsock did not end within " + HANG_GUARD_SECONDS + " s: it hangs");
        }
        return p.exitValue();
    }
}
