package dev.panamax.junit;

import java.io.IOException;
import java.nio.file.Path;

/** The guest's agent loop ({@link GuestServer#AGENT_LOOP}) run on this host, the agent serving a Unix socket instead of vsock. */
final class AgentLoop implements AutoCloseable {
    private final Process shell;

    private AgentLoop(Process shell) {
        this.shell = shell;
    }

    static AgentLoop start(Path agent, Path socket) throws IOException {
        String loop = GuestServer.AGENT_LOOP.replace("/bin/panamax-agent vsock " + GuestServer.AGENT_PORT, "\"$0\" unix \"$1\"");
        return new AgentLoop(new ProcessBuilder("sh", "-c", loop, agent.toString(), socket.toString())
                .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(ProcessBuilder.Redirect.DISCARD).start());
    }

    @Override
    public void close() {
        shell.descendants().forEach(ProcessHandle::destroyForcibly);
        shell.destroyForcibly();
    }
}
