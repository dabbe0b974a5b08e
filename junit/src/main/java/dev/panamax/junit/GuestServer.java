package dev.panamax.junit;

import dev.panamax.api.RestoreOptions;
import dev.panamax.api.SnapshotOptions;
import dev.panamax.api.VirtualMachine;
import dev.panamax.api.VirtualMachineException;
import dev.panamax.guest.PanamaxCache;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The process that holds a test class's guest: boots it with Panamax in this JVM (which must be
 * where KVM is hardware-fast: this host, or inside the rig), then runs the commands that come on stdin
 * ({@link GuestWire}) through the guest's agents ({@link AgentPool}), answering on stdout, until stdin
 * ends or says {@code QUIT}. Not an API: {@link PanamaxExtension} starts it with {@code RealKvm.runJava}.
 */
public final class GuestServer {
    /** The host's vsock port the agents connect to (the socket is this server's alone: any port serves). */
    static final int AGENT_PORT = 52;
    /** The guest's CID (any valid one: the device is this VM's alone). */
    private static final long GUEST_CID = 3;
    /** What an agent of the loop says on the console when nobody listens for it. */
    static final String AGENT_REFUSED = "panamax-agent: cannot connect to the host's vsock port " + AGENT_PORT + ":";
    /** How long the loop may take to try again once its agent's connection closed, and to connect once a listener is back. */
    static final Duration BETWEEN_AGENTS_TIMEOUT = Duration.ofSeconds(60);
    /**
     * What /init runs instead of one command: an agent after another, each serving one command. An agent
     * that failed (its command timed out, the host is gone or not listening) is followed
     * by the next after a tenth of a second: soon enough that a reset costs little, late enough that a
     * guest whose host went away does not spin.
     */
    static final String AGENT_LOOP = "while :; do /bin/panamax-agent vsock " + AGENT_PORT + " || sleep 0.1; done";

    /**
     * How often a reset restores the snapshot before it gives up on a restored guest whose agent never
     * connects. Each restore starts from the same state, so a second one tells a restored guest that stalled
     * once (seen once in CI: 600 s with no agent and no console line) from a snapshot that cannot serve.
     */
    static final int RESTORES_PER_RESET = 2;

    private GuestServer() {}

    /** One restore of the guest's snapshot and the wait for its first agent: null once one connected, else why not. */
    interface RestoreAttempt {
        String run() throws IOException, InterruptedException;
    }

    /**
     * Runs {@code attempt} up to {@code restores} times, until an agent of the restored guest connected,
     * telling {@code log} about each attempt that had none; returns null then, else why the last one failed.
     */
    static String restoredUntilAgent(int restores, RestoreAttempt attempt, Consumer<String> log) throws IOException, InterruptedException {
        String why = null;
        for (int i = 1; i <= restores; i++) {
            why = attempt.run();
            if (why == null) return null;
            if (i < restores) log.accept("reset: " + why + "; restoring the snapshot once more");
        }
        return why;
    }

    /** Arguments: {@code NAME=VALUE} each, as {@link GuestSpec#serverArgs} makes them. */
    public static void main(String[] args) {
        MessageWriter wire = takeStdout();
        int status;
        try {
            GuestSpec spec = GuestSpec.fromServerArgs(List.of(args));
            status = serve(spec, requests(), wire);
        } catch (IllegalArgumentException e) {
            wire.send(new GuestWire.Ended("the guest server's arguments: " + e.getMessage()));
            status = 2;
        } catch (IOException | VirtualMachineException | IllegalStateException e) { // (a snapshot's refusal is the last)
            wire.send(new GuestWire.Ended("the guest server failed: " + e.getMessage()));
            status = 1;
        }
        System.err.flush();
        System.exit(status); // the VM's threads are gone, but a stuck one must not keep the process
    }

    /**
     * The wire on this process's stdout; whatever else the JVM prints from now on (Panamax's own
     * messages) becomes LOG messages, never a broken line on the wire.
     */
    static MessageWriter takeStdout() {
        MessageWriter wire = new MessageWriter(new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.US_ASCII));
        PrintStream log = new PrintStream(new LineStream(line -> wire.send(new GuestWire.Log(line))), true, StandardCharsets.UTF_8);
        System.setOut(log);
        System.setErr(log);
        return wire;
    }

    /** The requests on this process's stdin. */
    static BufferedReader requests() {
        return new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
    }

    /** Writes messages to the real stdout, one whole message at a time. */
    static final class MessageWriter {
        private final PrintStream out;

        MessageWriter(PrintStream out) {
            this.out = out;
        }

        synchronized void send(GuestWire.ServerMessage message) {
            out.print(GuestWire.encode(message));
            out.flush();
        }
    }

    private static int serve(GuestSpec spec, BufferedReader requests, MessageWriter wire) throws IOException {
        Path dir = Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")), "panamax-guest-");
        try (LineStream console = new LineStream(line -> wire.send(new GuestWire.Console(line)));
                Machine machine = new Machine(spec, dir, console, wire)) {
            try {
                if (machine.boot()) wire.send(new GuestWire.Ready());
                serveRequests(requests, machine, wire);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return 0;
        } finally {
            PanamaxCache.deleteTree(dir);
        }
    }

    /** The guest as requests find it: its agents now, and its way back to the snapshot taken after its boot. */
    interface ServedGuest {
        /** The agents of the guest as it is now. */
        AgentPool agents();

        /**
         * Brings the guest back to its snapshot and waits, within {@code timeout}, until an agent of the
         * restored guest connected.
         *
         * @return null when it is back, else why not (a sentence)
         */
        String reset(Duration timeout) throws InterruptedException;
    }

    /** Runs each request in turn until stdin ends or says QUIT. */
    static void serveRequests(BufferedReader requests, ServedGuest guest, MessageWriter wire) throws IOException {
        for (String line; (line = requests.readLine()) != null && !line.equals(GuestWire.QUIT.strip()); ) {
            try {
                if (GuestWire.isReset(line)) reset(GuestWire.decodeReset(line), guest, wire);
                else exec(GuestWire.decodeExec(line), guest.agents(), wire);
            } catch (IllegalArgumentException e) {
                wire.send(new GuestWire.Log("a malformed request, ignored: " + e.getMessage()));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private static void reset(GuestWire.ResetRequest request, ServedGuest guest, MessageWriter wire) throws InterruptedException {
        long start = System.nanoTime();
        String failure = guest.reset(Duration.ofMillis(request.timeoutMillis()));
        wire.send(new GuestWire.Done(request.id(), failure == null ? 0 : -1, false, System.nanoTime() - start, failure == null ? "" : failure));
    }

    private static void exec(GuestWire.ExecRequest request, AgentPool agents, MessageWriter wire) throws IOException, InterruptedException {
        long start = System.nanoTime();
        AgentPool.Outcome outcome;
        try (OutputStream stdout = new Chunks(wire, request.id(), 1); OutputStream stderr = new Chunks(wire, request.id(), 2)) {
            outcome = agents.exec(request.argv(), Duration.ofMillis(request.timeoutMillis()), stdout, stderr);
        }
        wire.send(new GuestWire.Done(request.id(), outcome.status().orElse(-1), outcome.timedOut(), System.nanoTime() - start,
                outcome.failure() == null ? "" : outcome.failure()));
    }

    /**
     * A new pool of agents on a fresh listener at {@code socket}: each VM the server runs (the booted one,
     * each restored one) gets its own, so that no connection of a VM that is gone is ever taken for an agent.
     */
    static AgentPool listen(Path socket, Runnable onFirstAgent) throws IOException {
        Files.deleteIfExists(socket); // the previous pool's listener, closed
        ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            listener.bind(UnixDomainSocketAddress.of(socket), 4);
        } catch (IOException e) {
            listener.close();
            throw e;
        }
        AgentPool pool = new AgentPool(listener, onFirstAgent); // stopping it closes the listener
        pool.start();
        return pool;
    }

    /**
     * The server's VM, booted once, and with {@link Reset#SNAPSHOT} snapshotted once its first agent
     * connected (the guest is up), between two agents of its loop, and restored from that snapshot on each
     * reset: the VM before is killed and closed, its agents' pool stopped, and the restored VM gets a new
     * pool, to which the loop's next agent connects.
     */
    private static final class Machine implements ServedGuest, AutoCloseable {
        private final GuestSpec spec;
        private final Path uds;
        private final Path statePath;
        private final Path memoryPath;
        private final OutputStream console;
        private final MessageWriter wire;
        private volatile VirtualMachine vm; // the VM that serves; null while none does
        private volatile AgentPool agents;
        private volatile boolean quitting;
        private boolean snapshotted;

        Machine(GuestSpec spec, Path dir, OutputStream console, MessageWriter wire) {
            this.spec = spec;
            this.uds = dir.resolve("vsock");
            this.statePath = dir.resolve("vm.state");
            this.memoryPath = dir.resolve("vm.mem");
            this.console = console;
            this.wire = wire;
        }

        private Path agentSocket() {
            return Path.of(uds + "_" + AGENT_PORT);
        }

        /**
         * Boots the guest and waits until its first agent connected; with {@link Reset#SNAPSHOT}, then
         * snapshots it (paused for that).
         *
         * @return whether the guest is up (else it ended, and said so)
         * @throws IOException when the snapshot cannot be written
         */
        boolean boot() throws IOException, InterruptedException {
            AgentPool pool = listen(agentSocket(), () -> {});
            VirtualMachine booted;
            try {
                booted = machine(spec, uds, console);
            } catch (RuntimeException e) {
                pool.stop();
                throw e;
            }
            CountDownLatch agentRefused = new CountDownLatch(1);
            booted.addConsoleLineListener(line -> {
                if (line.contains(AGENT_REFUSED)) agentRefused.countDown();
            });
            serve(booted, pool);
            booted.start();
            if (!pool.awaitFirstAgent(null)) return false;
            if (spec.reset() == Reset.SNAPSHOT) snapshotBetweenAgents(booted, agentRefused);
            return true;
        }

        /**
         * Snapshots the guest while no agent of its loop has a connection: a connection the snapshot kept
         * would be one the restored guest waits on for ever (its transport reset did not end it in the tiny
         * guest). So the agents' listener is closed first, with the waiting agent's connection: that agent
         * ends, the next one's connection is refused (it says so on the console, and ends), and the guest is
         * in the loop's pause when it is paused. After the snapshot, a new listener takes the loop's next agent.
         */
        private void snapshotBetweenAgents(VirtualMachine booted, CountDownLatch agentRefused) throws IOException, InterruptedException {
            agents.stop();
            if (!agentRefused.await(BETWEEN_AGENTS_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new IOException("the guest's agent loop did not try again within " + BETWEEN_AGENTS_TIMEOUT.toSeconds()
                        + " s of its connection's end, so no snapshot was taken between its agents");
            }
            booted.pause();
            booted.snapshot(SnapshotOptions.full(statePath, memoryPath));
            snapshotted = true;
            AgentPool next = listen(agentSocket(), () -> {});
            agents = next;
            booted.resume();
            if (!next.awaitFirstAgent(BETWEEN_AGENTS_TIMEOUT)) {
                throw new IOException("no agent of the guest connected within " + BETWEEN_AGENTS_TIMEOUT.toSeconds() + " s of its snapshot");
            }
        }

        /** Makes {@code machine} the one that serves, and watches it: its end, unless asked for, ends the server's guest. */
        private void serve(VirtualMachine machine, AgentPool pool) {
            agents = pool;
            vm = machine;
            Thread.ofPlatform().daemon().name("guest-watch").start(() -> {
                VirtualMachine.Exit exit = awaitExit(machine);
                if (!quitting && vm == machine) {
                    wire.send(new GuestWire.Ended("the guest ended: " + exit));
                    agents.stop(); // a command under way ends with its connection
                }
            });
        }

        @Override
        public AgentPool agents() {
            return agents;
        }

        @Override
        public String reset(Duration timeout) throws InterruptedException {
            if (!snapshotted) return "this guest has no snapshot to go back to (its class has reset = Reset.NONE)";
            Duration agentWait = timeout.compareTo(BETWEEN_AGENTS_TIMEOUT) < 0 ? timeout : BETWEEN_AGENTS_TIMEOUT;
            String why;
            try {
                why = restoredUntilAgent(RESTORES_PER_RESET, () -> restoreAndAwaitAgent(agentWait), System.err::println);
            } catch (IOException | RuntimeException e) {
                why = "the guest's snapshot could not be restored: " + e.getMessage();
            }
            if (why != null) { // a guest that cannot serve: its tests fail at once rather than each wait in turn
                wire.send(new GuestWire.Ended(why));
                retire();
            }
            return why;
        }

        /** Ends the VM that serves, restores the snapshot in its place, and waits up to {@code agentWait} for its first agent. */
        private String restoreAndAwaitAgent(Duration agentWait) throws IOException, InterruptedException {
            long start = System.nanoTime();
            retire();
            long retired = System.nanoTime();
            AgentPool pool = listen(agentSocket(), () -> {});
            VirtualMachine restored;
            try {
                Files.deleteIfExists(uds); // the closed VM's, should it have left it
                restored = VirtualMachine.restore(RestoreOptions.of(statePath, memoryPath).console(console));
            } catch (IOException | RuntimeException e) {
                pool.stop();
                throw e;
            }
            serve(restored, pool);
            // (the server's log, kept for a failure's diagnosis: where a slow or stuck reset spent its time)
            System.err.printf("reset: the VM before closed in %d ms, the snapshot restored in %d ms%n", (retired - start) / 1_000_000,
                    (System.nanoTime() - retired) / 1_000_000);
            if (pool.awaitFirstAgent(agentWait)) return null;
            // (what the stuck guest did meanwhile: no exits at all is a guest that never ran again)
            return "no agent of the restored guest connected within " + agentWait.toSeconds() + " s (its vCPUs exited "
                    + restored.vcpuExits() + " times and its console wrote " + restored.consoleOutputBytes() + " bytes since the restore)";
        }

        /** Ends the VM that serves, and its agents, without a word on the wire. */
        private void retire() {
            VirtualMachine old = vm;
            AgentPool oldAgents = agents;
            vm = null;
            if (old != null) {
                old.kill();
                old.close();
            }
            if (oldAgents != null) oldAgents.stop();
        }

        @Override
        public void close() {
            quitting = true;
            retire();
        }
    }

    /** A command's stdout or stderr as OUT or ERR messages, one per write. */
    private static final class Chunks extends OutputStream {
        private final MessageWriter wire;
        private final int id;
        private final int stream;

        Chunks(MessageWriter wire, int id, int stream) {
            this.wire = wire;
            this.id = id;
            this.stream = stream;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            if (len > 0) wire.send(new GuestWire.Output(id, stream, java.util.Arrays.copyOfRange(b, off, off + len)));
        }
    }

    private static VirtualMachine machine(GuestSpec spec, Path uds, OutputStream console) {
        VirtualMachine.Builder builder = VirtualMachine.builder().kernel(spec.kernel()).initrd(spec.initramfs())
                .commandLine(commandLine(spec)).cpus(spec.cpus()).memoryMib(spec.memoryMib()).vsock(GUEST_CID, uds).console(console);
        for (GuestSpec.Share s : spec.shares()) builder.share(s.path(), s.tag(), s.readOnly());
        return builder.build();
    }

    /**
     * The guest's command line: quiet (each console byte is a VM exit) with WARN's lines still shown
     * (loglevel=5), the shares mounted at /mnt/TAG, and the agents' loop.
     */
    static String commandLine(GuestSpec spec) {
        StringBuilder line = new StringBuilder("quiet loglevel=5");
        for (int i = 0; i < spec.shares().size(); i++) {
            String tag = spec.shares().get(i).tag();
            line.append(i == 0 ? " panamax.shares=" : ",").append(tag).append(":/mnt/").append(tag);
        }
        return line.append(" panamax.run=\"").append(AGENT_LOOP).append('"').toString();
    }

    private static VirtualMachine.Exit awaitExit(VirtualMachine vm) {
        for (;;) {
            var exit = vm.awaitExit(Duration.ofDays(1));
            if (exit.isPresent()) return exit.get();
        }
    }
}
