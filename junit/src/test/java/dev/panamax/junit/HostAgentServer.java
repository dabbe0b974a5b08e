package dev.panamax.junit;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * {@link GuestServer} with the guest replaced by the agent loop on this host ({@link AgentLoop}), so
 * that {@link GuestConnection} and the server's request handling are tested end to end without KVM.
 * Arguments: the compiled agent. It says one console line, as a guest would. A reset does what the
 * server's does to the agents (a new pool on a new listener, the old agent's connection closed under it,
 * the loop's next agent awaited) and says {@code reset N} on the console.
 */
public final class HostAgentServer {
    private HostAgentServer() {}

    public static void main(String[] args) throws Exception {
        GuestServer.MessageWriter wire = GuestServer.takeStdout();
        Path dir = Files.createTempDirectory("panamax-host-agent-");
        Path socket = dir.resolve("agent.sock");
        wire.send(new GuestWire.Console("host agent loop started"));
        System.err.println("a line on the server's stderr");
        HostGuest guest = new HostGuest(socket, wire, GuestServer.listen(socket, () -> wire.send(new GuestWire.Ready())));
        AgentLoop loop = AgentLoop.start(Path.of(args[0]), socket);
        try {
            GuestServer.serveRequests(GuestServer.requests(), guest, wire);
        } finally {
            loop.close();
            guest.agents().stop();
            Files.deleteIfExists(socket);
            Files.deleteIfExists(dir);
        }
        System.exit(0);
    }

    private static final class HostGuest implements GuestServer.ServedGuest {
        private final Path socket;
        private final GuestServer.MessageWriter wire;
        private volatile AgentPool agents;
        private int resets;

        HostGuest(Path socket, GuestServer.MessageWriter wire, AgentPool agents) {
            this.socket = socket;
            this.wire = wire;
            this.agents = agents;
        }

        @Override
        public AgentPool agents() {
            return agents;
        }

        @Override
        public String reset(Duration timeout) throws InterruptedException {
            agents.stop();
            try {
                agents = GuestServer.listen(socket, () -> {});
            } catch (IOException e) {
                return "cannot listen again: " + e.getMessage();
            }
            wire.send(new GuestWire.Console("reset " + ++resets));
            return agents.awaitFirstAgent(timeout) ? null : "no agent within " + timeout.toMillis() + " ms";
        }
    }
}
