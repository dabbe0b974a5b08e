package dev.panamax.junit;

import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@link GuestServer} with the guest replaced by the agent loop on this host ({@link AgentLoop}), so
 * that {@link GuestConnection} and the server's request handling are tested end to end without KVM.
 * Arguments: the compiled agent. It says one console line, as a guest would.
 */
public final class HostAgentServer {
    private HostAgentServer() {}

    public static void main(String[] args) throws Exception {
        GuestServer.MessageWriter wire = GuestServer.takeStdout();
        Path dir = Files.createTempDirectory("panamax-host-agent-");
        Path socket = dir.resolve("agent.sock");
        try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            listener.bind(UnixDomainSocketAddress.of(socket));
            AgentLoop loop = AgentLoop.start(Path.of(args[0]), socket);
            try (AgentPool agents = new AgentPool(listener, () -> wire.send(new GuestWire.Ready()))) {
                wire.send(new GuestWire.Console("host agent loop started"));
                System.err.println("a line on the server's stderr");
                agents.start();
                GuestServer.serveRequests(GuestServer.requests(), agents, wire);
            } finally {
                loop.close();
            }
        } finally {
            Files.deleteIfExists(socket);
            Files.deleteIfExists(dir);
        }
        System.exit(0);
    }
}
