package dev.panamax.junit;

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
import java.util.concurrent.atomic.AtomicBoolean;

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
    /**
     * What /init runs instead of one command: an agent after another, each serving one command. An agent
     * that failed (its command timed out, or the host is gone) is followed by the next after a second,
     * so that a guest whose host went away does not spin.
     */
    static final String AGENT_LOOP = "while :; do /bin/panamax-agent vsock " + AGENT_PORT + " || sleep 1; done";

    private GuestServer() {}

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
        } catch (IOException | VirtualMachineException e) {
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
        try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                LineStream console = new LineStream(line -> wire.send(new GuestWire.Console(line)))) {
            Path uds = dir.resolve("vsock");
            listener.bind(UnixDomainSocketAddress.of(Path.of(uds + "_" + AGENT_PORT)), 4);
            AtomicBoolean quitting = new AtomicBoolean();
            try (AgentPool agents = new AgentPool(listener, () -> wire.send(new GuestWire.Ready()));
                    VirtualMachine vm = machine(spec, uds, console)) {
                agents.start();
                vm.start();
                Thread.ofPlatform().daemon().name("guest-watch").start(() -> {
                    VirtualMachine.Exit exit = awaitExit(vm);
                    if (!quitting.get()) {
                        wire.send(new GuestWire.Ended("the guest ended: " + exit));
                        agents.stop(); // a command under way ends with its connection
                    }
                });
                serveRequests(requests, agents, wire);
                quitting.set(true);
                vm.kill();
            }
            return 0;
        } finally {
            PanamaxCache.deleteTree(dir);
        }
    }

    /** Runs each request in turn until stdin ends or says QUIT. */
    static void serveRequests(BufferedReader requests, AgentPool agents, MessageWriter wire) throws IOException {
        for (String line; (line = requests.readLine()) != null && !line.equals(GuestWire.QUIT.strip()); ) {
            GuestWire.ExecRequest request;
            try {
                request = GuestWire.decodeExec(line);
            } catch (IllegalArgumentException e) {
                wire.send(new GuestWire.Log("a malformed request, ignored: " + e.getMessage()));
                continue;
            }
            long start = System.nanoTime();
            AgentPool.Outcome outcome;
            try (OutputStream stdout = new Chunks(wire, request.id(), 1); OutputStream stderr = new Chunks(wire, request.id(), 2)) {
                outcome = agents.exec(request.argv(), Duration.ofMillis(request.timeoutMillis()), stdout, stderr);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            wire.send(new GuestWire.Done(request.id(), outcome.status().orElse(-1), outcome.timedOut(), System.nanoTime() - start,
                    outcome.failure() == null ? "" : outcome.failure()));
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
