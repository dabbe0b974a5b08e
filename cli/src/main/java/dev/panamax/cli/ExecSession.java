package dev.panamax.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.util.List;
import java.util.OptionalInt;

/**
 * The host's side of one {@code exec} connection with the guest agent: sends the command, forwards
 * stdin (on a thread of its own), and copies the command's stdout and stderr to ours as they come
 * until the agent reports how the command ended. Every frame from the guest is checked by
 * {@link ExecProtocol#readGuestFrame}; one that breaks the protocol ends the session with a failure.
 * Public for panamax-junit's guest server, which runs one session per command over a guest it keeps.
 */
public final class ExecSession {
    /** How a session ended: the command's exit status, or why there is none. */
    public record Result(OptionalInt status, String failure) {
        static Result of(int status) {
            return new Result(OptionalInt.of(status), null);
        }

        static Result failed(String why) {
            return new Result(OptionalInt.empty(), why);
        }
    }

    private final SocketChannel channel;
    private final OutputStream stdout;
    private final OutputStream stderr;

    public ExecSession(SocketChannel channel, OutputStream stdout, OutputStream stderr) {
        this.channel = channel;
        this.stdout = stdout;
        this.stderr = stderr;
    }

    /** {@link #run(List, String, InputStream)} in the guest's root directory. */
    public Result run(List<String> argv, InputStream stdin) {
        return run(argv, null, stdin);
    }

    /**
     * Runs {@code argv} in the guest, in {@code workDir} (null: /), with {@code stdin} (null: none)
     * as its input, on this thread until the command ends or the connection does; closes the
     * connection, which lets the agent end.
     */
    public Result run(List<String> argv, String workDir, InputStream stdin) {
        try (channel) {
            send(ExecProtocol.command(argv, workDir));
            Thread.ofPlatform().daemon().name("exec-stdin").start(() -> forward(stdin));
            InputStream fromGuest = Channels.newInputStream(channel);
            for (;;) {
                ExecProtocol.GuestFrame frame = ExecProtocol.readGuestFrame(fromGuest);
                switch (frame) {
                    case null -> {
                        return Result.failed("the guest agent closed the connection before the command's status");
                    }
                    case ExecProtocol.Output o when o.bytes().length > 0 -> {
                        OutputStream to = o.stream() == ExecProtocol.STDOUT ? stdout : stderr;
                        to.write(o.bytes());
                        to.flush();
                    }
                    case ExecProtocol.Output ended -> { } // that stream ended; the status follows
                    case ExecProtocol.AgentError e -> {
                        return Result.failed("the guest agent failed: " + printable(e.text()));
                    }
                    default -> {
                        return Result.of(ExecProtocol.exitStatus(frame));
                    }
                }
            }
        } catch (ExecProtocol.MalformedFrameException e) {
            return Result.failed("the guest agent broke the protocol: " + e.getMessage());
        } catch (IOException e) {
            return Result.failed("the connection with the guest agent failed: " + e.getMessage());
        }
    }

    /** Sends {@code stdin} as DATA frames, then its end; stops quietly once the connection is closed. */
    private void forward(InputStream stdin) {
        byte[] buffer = new byte[ExecProtocol.MAX_PAYLOAD];
        try {
            if (stdin != null) {
                for (int n; (n = stdin.read(buffer)) > 0; ) {
                    send(ExecProtocol.frame(ExecProtocol.DATA, ExecProtocol.STDIN, buffer, 0, n));
                }
            }
            send(ExecProtocol.frame(ExecProtocol.DATA, ExecProtocol.STDIN, buffer, 0, 0));
        } catch (IOException e) {
            // the command ended (and the connection with it) or the connection failed: the reader reports that
        }
    }

    private void send(byte[] frames) throws IOException {
        synchronized (channel) {
            ByteBuffer b = ByteBuffer.wrap(frames);
            while (b.hasRemaining()) {
                channel.write(b);
            }
        }
    }

    /** The guest's text with control characters (but tabs) shown as '?', so that it cannot drive a terminal. */
    public static String printable(String text) {
        StringBuilder s = new StringBuilder(text.length());
        text.codePoints().forEach(c -> s.appendCodePoint(c == '\t' || !Character.isISOControl(c) ? c : '?'));
        return s.toString();
    }
}
