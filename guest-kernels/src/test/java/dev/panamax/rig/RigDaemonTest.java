package dev.panamax.rig;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The warm rig's daemon and its client, on this host: the daemon serves in this JVM and its "rig"
 * runs scripts under {@code sh} ({@link HostShellRig}), so the protocol, the sessions, the reuse and
 * restarts of the rig, kills and timeouts are tested without QEMU. WarmRigTest boots the real thing.
 */
class RigDaemonTest {
    private static final Duration LONG = Duration.ofSeconds(30);
    /** Threads of their own: the common pool has one thread on a machine of two cores, and the daemon holds it. */
    private static final java.util.concurrent.Executor THREADS = r -> Thread.ofPlatform().daemon().start(r);

    @TempDir
    Path home;

    private final List<HostShellRig> started = new CopyOnWriteArrayList<>();
    private RigDaemon daemon;
    private CompletableFuture<Void> serving;
    private DaemonDirectory directory;

    private void startDaemon(Duration idle, String key) throws IOException {
        directory = new DaemonDirectory(Files.createDirectory(home.resolve("daemon")));
        daemon = new RigDaemon(directory, options -> {
            HostShellRig rig = new HostShellRig(options);
            started.add(rig);
            return rig;
        }, idle, key);
        serving = CompletableFuture.runAsync(() -> {
            try {
                daemon.serve();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }, THREADS);
        for (int i = 0; i < 200 && !Files.exists(directory.socket()); i++) pause(10);
    }

    private void startDaemon() throws IOException {
        startDaemon(Duration.ofMinutes(5), RigDaemon.buildKey(System.getProperty("java.class.path")));
    }

    @AfterEach
    void stopDaemon() {
        if (daemon != null) daemon.stop("the test ended");
    }

    private Rig.Options options(Path cwd) {
        return new Rig.Options(cwd, List.of(), 4096, 2, Duration.ofSeconds(180), false, false, Duration.ofMinutes(1), null);
    }

    private WarmRig client() throws WarmRig.UnavailableException {
        return WarmRig.open(options(home), directory, false);
    }

    private static RunResult sh(WarmRig rig, String script, OutputStream out, InputStream in) {
        return rig.run(List.of("sh", "-c", script), LONG, out, in);
    }

    @Test
    void aCommandRunsWithItsOutputItsStatusItsInputAndTheClientsDirectory() throws Exception {
        startDaemon();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (WarmRig rig = client()) {
            RunResult r = sh(rig, "cat; pwd; exit 3", out, new ByteArrayInputStream("typed\n".getBytes(StandardCharsets.UTF_8)));
            assertThat(r.exitStatus()).isEqualTo(3);
            assertThat(r.timedOut()).isFalse();
            assertThat(out.toString(StandardCharsets.UTF_8)).isEqualTo("typed\n" + home.toRealPath() + "\n");
            assertThat(r.output()).isEqualTo(out.toString(StandardCharsets.UTF_8));
            // a second command in the same session
            assertThat(sh(rig, "exit 0", OutputStream.nullOutputStream(), null).exitStatus()).isZero();
        }
    }

    @Test
    void theNextClientGetsTheSameRigAndOneThatSharesMoreGetsAFreshRigSharingBoth(@TempDir Path elsewhere) throws Exception {
        startDaemon();
        Path scratch;
        try (WarmRig rig = client()) {
            scratch = rig.scratch();
            assertThat(sh(rig, "true", OutputStream.nullOutputStream(), null).exitStatus()).isZero();
        }
        try (WarmRig rig = client()) {
            assertThat(rig.scratch()).isEqualTo(scratch);
        }
        assertThat(started).hasSize(1);

        Path other = Files.createDirectory(elsewhere.resolve("other"));
        Path data = Files.createDirectory(elsewhere.resolve("data"));
        try (WarmRig rig = WarmRig.open(options(other).withShare(data, true), directory, false)) {
            assertThat(sh(rig, "pwd", OutputStream.nullOutputStream(), null).output()).isEqualTo(other.toRealPath() + "\n");
        }
        assertThat(started).hasSize(2);
        assertThat(started.get(0).isStopped()).isTrue();
        Rig.Options second = started.get(1).options();
        assertThat(second.covers(options(home))).as("still shares the first client's directory").isTrue();
        assertThat(second.covers(options(other).withShare(data, true))).isTrue();
        // a client of either kind now finds its directories shared: no further restart
        try (WarmRig rig = client()) {
            assertThat(sh(rig, "true", OutputStream.nullOutputStream(), null).exitStatus()).isZero();
        }
        assertThat(started).hasSize(2);
    }

    @Test
    void aRigThatDiedBetweenCommandsIsReplacedAndTheLogSaysWhy() throws Exception {
        startDaemon();
        try (WarmRig rig = client()) {
            assertThat(sh(rig, "true", OutputStream.nullOutputStream(), null).exitStatus()).isZero();
        }
        started.getFirst().die("QEMU exited with status 1; the rig's console ended with: oops");
        PrintStream err = System.err;
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        System.setErr(new PrintStream(log, true, StandardCharsets.UTF_8));
        try (WarmRig rig = client()) {
            assertThat(sh(rig, "echo again", OutputStream.nullOutputStream(), null).output()).isEqualTo("again\n");
        } finally {
            System.setErr(err);
        }
        assertThat(started).hasSize(2);
        assertThat(log.toString(StandardCharsets.UTF_8))
                .contains("rig daemon: the rig had stopped since the last command: QEMU exited with status 1; the rig's console ended with: oops");
    }

    @Test
    void aSecondClientWhileOneRunsIsToldTheRigIsBusy() throws Exception {
        startDaemon();
        try (WarmRig first = client()) {
            CompletableFuture<RunResult> running = CompletableFuture.supplyAsync(
                    () -> sh(first, "echo started; sleep 5", OutputStream.nullOutputStream(), null), THREADS);
            pause(500);
            assertThatThrownBy(this::client).isInstanceOf(WarmRig.UnavailableException.class).hasMessageContaining("busy");
            assertThat(running.get(30, TimeUnit.SECONDS).exitStatus()).isZero();
        }
    }

    @Test
    void aClientThatLeavesMidCommandHasItKilledAndTheNextOneIsServed() throws Exception {
        startDaemon();
        Path marker = home.resolve("not-reached");
        WarmRig first = client();
        CompletableFuture<RunResult> running = CompletableFuture.supplyAsync(
                () -> sh(first, "sleep 3; touch " + marker, OutputStream.nullOutputStream(), null), THREADS);
        pause(500);
        first.close();
        assertThatThrownBy(() -> running.get(30, TimeUnit.SECONDS)).hasCauseInstanceOf(RigStoppedException.class);
        try (WarmRig next = client()) {
            assertThat(sh(next, "echo served", OutputStream.nullOutputStream(), null).output()).isEqualTo("served\n");
        }
        pause(3500);
        assertThat(marker).doesNotExist();
        assertThat(started).hasSize(1);
    }

    @Test
    void interruptKillsTheCommandAndTheRigStaysWarm() throws Exception {
        startDaemon();
        try (WarmRig rig = client()) {
            CompletableFuture<RunResult> running = CompletableFuture.supplyAsync(
                    () -> sh(rig, "sleep 20", OutputStream.nullOutputStream(), null), THREADS);
            pause(500);
            rig.interruptRun();
            RunResult r = running.get(10, TimeUnit.SECONDS);
            assertThat(r.exitStatus()).isNotZero();
            assertThat(r.timedOut()).isFalse();
        }
        assertThat(started).hasSize(1);
        assertThat(started.getFirst().isStopped()).isFalse();
    }

    @Test
    void aCommandPastItsTimeoutIsKilledAndSaysSo() throws Exception {
        startDaemon();
        try (WarmRig rig = client()) {
            RunResult r = rig.run(List.of("sleep", "20"), Duration.ofMillis(300), OutputStream.nullOutputStream(), null);
            assertThat(r.timedOut()).isTrue();
        }
    }

    @Test
    void aClientOfAnotherBuildMakesTheDaemonRetireAndIsToldSo() throws Exception {
        startDaemon();
        try (SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            c.connect(UnixDomainSocketAddress.of(directory.socket()));
            WarmRigWire wire = new WarmRigWire(Channels.newInputStream(c), new RigDaemon.ChannelOutput(c));
            wire.write(WarmRigWire.HELLO, new WarmRig.Hello(WarmRigWire.PROTOCOL, "0123abcd", options(home)).text());
            assertThat(wire.read().type()).isEqualTo(WarmRigWire.STALE);
        }
        serving.get(30, TimeUnit.SECONDS);
        assertThat(directory.socket()).doesNotExist();
    }

    @Test
    void anIdleDaemonEndsAndStopsItsRig() throws Exception {
        startDaemon(Duration.ofMillis(600), RigDaemon.buildKey(System.getProperty("java.class.path")));
        try (WarmRig rig = client()) {
            assertThat(sh(rig, "true", OutputStream.nullOutputStream(), null).exitStatus()).isZero();
        }
        serving.get(30, TimeUnit.SECONDS);
        assertThat(started.getFirst().isStopped()).isTrue();
        assertThat(directory.socket()).doesNotExist();
    }

    @Test
    void statusTellsWhatRunsAndStopEndsTheDaemon() throws Exception {
        startDaemon();
        try (WarmRig rig = client()) {
            sh(rig, "true", OutputStream.nullOutputStream(), null);
        }
        awaitStatus("idle for"); // the session ends just after the client leaves
        assertThat(status()).contains("2 vCPUs, 4096 MiB", "shared: " + home);
        assertThat(ask(WarmRigWire.STOP)).isEqualTo("stopping");
        serving.get(30, TimeUnit.SECONDS);
        assertThat(started.getFirst().isStopped()).isTrue();
    }

    @Test
    void malformedFramesEndTheSessionNotTheDaemon() throws Exception {
        startDaemon();
        for (byte[] garbage : new byte[][] {
                {'H', 0x7f, 0, 0, 0}, // a length past the limit
                {'H', 0, 0, 0, 3, 'x', 'y', 'z'}, // a hello of one line
                {'R', 0, 0, 0, 0}, // a run before the hello
                {'H', 0, 0, 0}, // a header cut short
        }) {
            try (SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                c.connect(UnixDomainSocketAddress.of(directory.socket()));
                Channels.newOutputStream(c).write(garbage);
                c.shutdownOutput();
                Channels.newInputStream(c).readAllBytes(); // the daemon answers or closes
            }
        }
        try (WarmRig rig = client()) {
            assertThat(sh(rig, "echo alive", OutputStream.nullOutputStream(), null).output()).isEqualTo("alive\n");
        }
    }

    @Test
    void aHelloIsParsedStrictly() {
        Rig.Options o = options(Path.of("/work/x")).withShare(Path.of("/data"), true);
        WarmRig.Hello hello = new WarmRig.Hello(1, "abc123", o);
        WarmRig.Hello back = WarmRig.Hello.parse(hello.text());
        assertThat(back.buildKey()).isEqualTo("abc123");
        assertThat(back.options().workingDirectory()).isEqualTo(Path.of("/work/x"));
        assertThat(back.options().shares()).containsExactly(new Rig.Share(Path.of("/data"), true));
        String good = hello.text();
        for (String bad : List.of(good.replace("cwd /work/x", "cwd work/x"), good.replace("cpus 2", "cpus 99"),
                good.replace("tcg multi", "tcg many"), good.replace("share ro /data", "share xx /data"),
                good.replace("key abc123", "key ../../"), good.replace("memory 4096", "memory lots"),
                good.replace("share ro /data", "share ro /da\tta"), "protocol 1\n")) {
            assertThatThrownBy(() -> WarmRig.Hello.parse(bad)).as(bad).isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void aRunRequestIsParsedStrictly() {
        WarmRig.RunRequest r = new WarmRig.RunRequest(Duration.ofSeconds(5), true, "java", "cd /x\nexec java\n");
        assertThat(WarmRig.RunRequest.parse(r.bytes())).isEqualTo(r);
        WarmRig.RunRequest s = new WarmRig.RunRequest(Duration.ofSeconds(5), false, "Main", "cd /x\nexec java Main a\n",
                "cd /x\nexec java Standby\n", WarmRig.encodeArgs(List.of("a", "b c", "")));
        assertThat(WarmRig.RunRequest.parse(s.bytes())).isEqualTo(s);
        assertThat(WarmRig.decodeArgs(s.args())).containsExactly("a", "b c", "");
        for (String bad : List.of("", "5000\ninput\njava\n", "5000\ninput\njava\n4 -1 0\nabc", "-1\nnone\nx\n1 -1 0\ny",
                "soon\nnone\nx\n1 -1 0\ny", "5000\nmaybe\nx\n1 -1 0\ny", "5000\nnone\nx\n1 -2 0\ny",
                "5000\nnone\nx\n1 0 2\nyA\n", "5000\nnone\nx\n1 1\nyz")) {
            assertThatThrownBy(() -> WarmRig.RunRequest.parse(bad.getBytes(StandardCharsets.UTF_8))).as(bad)
                    .isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void aJavaProgramRunsColdFirstThenInAStandbyStartedAfterEachCommandWhichGivesWayToAnyOtherCommand() throws Exception {
        startDaemon();
        // A stand-in for a JVM: "jvm" runs its main class (a script) with the arguments; the standby script warms up,
        // says it is ready, reads the arguments as its first line and runs them.
        Path main = Files.writeString(home.resolve("main.sh"), "echo cold \"$@\"\n");
        Path standby = Files.writeString(home.resolve("standby.sh"), """
                echo warming up
                printf 'panamax-standby-ready;'
                read line
                echo "standby $(echo "$line" | base64 -d | tr '\\000' ' ')"
                exit 7
                """);
        List<String> jvm = List.of("sh", "-c", "exec sh \"$@\"", "sh");
        try (WarmRig rig = client()) {
            RunResult first = rig.runProgram(jvm, main.toString(), standby.toString(), List.of("a", "b"), LONG,
                    OutputStream.nullOutputStream(), null);
            assertThat(first.output()).isEqualTo("cold a b\n");
        }
        awaitStatus("standby JVM: ready");
        try (WarmRig rig = client()) {
            RunResult second = rig.runProgram(jvm, main.toString(), standby.toString(), List.of("c", "d"), LONG,
                    OutputStream.nullOutputStream(), null);
            assertThat(second.output()).as("no warm-up output, the arguments passed").isEqualTo("standby c d\n");
            assertThat(second.exitStatus()).isEqualTo(7);
        }
        awaitStatus("standby JVM: ready"); // another, after the one that served
        try (WarmRig rig = client()) {
            assertThat(sh(rig, "echo plain", OutputStream.nullOutputStream(), null).output()).as("the standby gave way").isEqualTo("plain\n");
        }
        awaitStatus("standby JVM: ready"); // and is back after the plain command
        try (WarmRig rig = client()) {
            assertThat(rig.runProgram(jvm, main.toString(), standby.toString(), List.of("e"), LONG, OutputStream.nullOutputStream(), null)
                    .output()).isEqualTo("standby e\n");
            Path other = Files.writeString(home.resolve("other.sh"), "echo other\n");
            assertThat(rig.runProgram(jvm, main.toString(), other.toString(), List.of("f"), LONG, OutputStream.nullOutputStream(), null)
                    .output()).as("cold: the waiting standby is of another program").isEqualTo("cold f\n");
        }
        assertThat(started).hasSize(1);
    }

    private String status() throws IOException {
        return ask(WarmRigWire.STATUS);
    }

    private void awaitStatus(String text) throws IOException {
        String status = status();
        for (int i = 0; i < 200 && !status.contains(text); i++) {
            pause(50);
            status = status();
        }
        assertThat(status).contains(text);
    }

    @Test
    void frameInputGivesWhatCameThenItsEndAndNothingAfterAnAbort() throws Exception {
        RigDaemon.FrameInput in = new RigDaemon.FrameInput();
        in.add("ab".getBytes(StandardCharsets.US_ASCII));
        in.add("c".getBytes(StandardCharsets.US_ASCII));
        in.end();
        in.add("late".getBytes(StandardCharsets.US_ASCII));
        assertThat(new String(in.readAllBytes(), StandardCharsets.US_ASCII)).isEqualTo("abc");
        RigDaemon.FrameInput aborted = new RigDaemon.FrameInput();
        aborted.add("unread".getBytes(StandardCharsets.US_ASCII));
        aborted.abort();
        assertThat(aborted.read()).isEqualTo(-1);
    }

    @Test
    void theIdleTimeoutComesFromItsVariable() {
        assertThat(RigDaemon.idleTimeout(null)).isEqualTo(Duration.ofMinutes(15));
        assertThat(RigDaemon.idleTimeout("90s")).isEqualTo(Duration.ofSeconds(90));
        assertThat(RigDaemon.idleTimeout("2h")).isEqualTo(Duration.ofHours(2));
        assertThatThrownBy(() -> RigDaemon.idleTimeout("soon")).hasMessageContaining("PANAMAX_RIG_IDLE is 'soon'");
    }

    private String ask(byte request) throws IOException {
        try (SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            c.connect(UnixDomainSocketAddress.of(directory.socket()));
            WarmRigWire wire = new WarmRigWire(Channels.newInputStream(c), new RigDaemon.ChannelOutput(c));
            wire.write(request);
            return wire.read().text();
        }
    }

    private static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }
}
