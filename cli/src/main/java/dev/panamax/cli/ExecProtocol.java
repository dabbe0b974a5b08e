package dev.panamax.cli;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The frames between {@code panamax exec} and its guest agent ({@code exec-agent.c} in guest-kernels),
 * described for users in README.md ("panamax exec"). Each frame is an 8-byte header, type (u8),
 * stream (u8), two reserved bytes (0) and the payload's length (u32, little-endian), then the payload:
 * <ul>
 * <li>host to guest: {@link #ARG} (one argument, no NUL), at most one {@link #DIR} (the working
 *     directory, no NUL), {@link #RUN} (empty, after the arguments), {@link #DATA} on {@link #STDIN}
 *     (an empty one ends stdin);</li>
 * <li>guest to host: {@link #DATA} on {@link #STDOUT} or {@link #STDERR} (an empty one ends that stream),
 *     then {@link #EXIT} (2 bytes: 0 and the exit status, or 1 and the signal) or {@link #ERROR} (the
 *     agent's own failure, as text).</li>
 * </ul>
 * The guest is not trusted: {@link #readGuestFrame} bounds and checks every frame before anything of it is used.
 */
final class ExecProtocol {
    static final int HEADER_SIZE = 8;
    /** The largest payload either side sends or accepts. */
    static final int MAX_PAYLOAD = 64 * 1024;
    /** At most this many arguments, and this many bytes of them (each counted with a NUL), as the agent accepts. */
    static final int MAX_ARGS = 1024;
    static final int MAX_ARGV_BYTES = 256 * 1024;
    /** The longest {@link #DIR}, in bytes (PATH_MAX less its NUL). */
    static final int MAX_DIR = 4095;
    /** The longest text of an {@link #ERROR}. */
    static final int MAX_ERROR_TEXT = 4096;

    static final int ARG = 1;
    static final int RUN = 2;
    static final int DATA = 3;
    static final int EXIT = 4;
    static final int ERROR = 5;
    static final int DIR = 6;

    static final int STDIN = 0;
    static final int STDOUT = 1;
    static final int STDERR = 2;

    /** The highest signal number Linux has (SIGRTMAX). */
    static final int MAX_SIGNAL = 64;

    private ExecProtocol() {}

    /** A frame the guest sent, checked. */
    sealed interface GuestFrame {}

    /** Bytes of the command's stdout or stderr; empty when that stream ended. */
    record Output(int stream, byte[] bytes) implements GuestFrame {}

    /** The command exited with {@code status} (0-255). */
    record Exited(int status) implements GuestFrame {}

    /** A signal (1-64) ended the command. */
    record Signalled(int signal) implements GuestFrame {}

    /** The agent failed (its text is the guest's: printed, never interpreted). */
    record AgentError(String text) implements GuestFrame {}

    /** A frame that breaks the protocol: the connection is dropped. */
    static final class MalformedFrameException extends IOException {
        private static final long serialVersionUID = 1L;

        MalformedFrameException(String message) {
            super(message);
        }
    }

    /** One frame's bytes. */
    static byte[] frame(int type, int stream, byte[] payload, int offset, int length) {
        if (length < 0 || length > MAX_PAYLOAD) {
            throw new IllegalArgumentException("a frame's payload is 0 to " + MAX_PAYLOAD + " bytes, not " + length);
        }
        byte[] frame = new byte[HEADER_SIZE + length];
        frame[0] = (byte) type;
        frame[1] = (byte) stream;
        frame[4] = (byte) length;
        frame[5] = (byte) (length >>> 8);
        frame[6] = (byte) (length >>> 16);
        frame[7] = (byte) (length >>> 24);
        System.arraycopy(payload, offset, frame, HEADER_SIZE, length);
        return frame;
    }

    /** {@link #command(List, String)} in the guest's root directory. */
    static byte[] command(List<String> argv) {
        return command(argv, null);
    }

    /**
     * The frames that give the agent {@code argv} and start it: one {@link #ARG} each, a {@link #DIR}
     * when {@code workDir} is not null, then {@link #RUN}.
     *
     * @throws IllegalArgumentException naming the argument or directory the agent would refuse (a NUL, too long, too many)
     */
    static byte[] command(List<String> argv, String workDir) {
        if (argv.isEmpty()) {
            throw new IllegalArgumentException("no command to run");
        }
        if (argv.size() > MAX_ARGS) {
            throw new IllegalArgumentException("the command has " + argv.size() + " arguments; the guest agent takes at most " + MAX_ARGS);
        }
        ByteArrayOutputStream frames = new ByteArrayOutputStream();
        long total = 0;
        for (String arg : argv) {
            byte[] bytes = arg.getBytes(StandardCharsets.UTF_8);
            if (arg.indexOf('\0') >= 0) {
                throw new IllegalArgumentException("argument '" + arg.replace('\0', '?') + "' holds a NUL character, which no program's argument can");
            }
            if (bytes.length > MAX_PAYLOAD) {
                throw new IllegalArgumentException("an argument of " + bytes.length + " bytes is longer than the " + MAX_PAYLOAD
                        + " the guest agent takes");
            }
            total += bytes.length + 1;
            frames.writeBytes(frame(ARG, 0, bytes, 0, bytes.length));
        }
        if (total > MAX_ARGV_BYTES) {
            throw new IllegalArgumentException("the command's arguments total " + total + " bytes; the guest agent takes at most "
                    + MAX_ARGV_BYTES);
        }
        if (workDir != null) {
            byte[] dir = workDir.getBytes(StandardCharsets.UTF_8);
            if (dir.length == 0 || dir.length > MAX_DIR || workDir.indexOf('\0') >= 0) {
                throw new IllegalArgumentException("the working directory '" + workDir.replace('\0', '?') + "' is not 1 to " + MAX_DIR
                        + " bytes without a NUL");
            }
            frames.writeBytes(frame(DIR, 0, dir, 0, dir.length));
        }
        frames.writeBytes(frame(RUN, 0, new byte[0], 0, 0));
        return frames.toByteArray();
    }

    /**
     * Reads one frame from the guest, checking its header before reading a payload of its length.
     *
     * @return the frame, or null when the stream ended where a frame would begin
     * @throws MalformedFrameException when the frame breaks the protocol (or the stream ends inside it)
     */
    static GuestFrame readGuestFrame(InputStream in) throws IOException {
        byte[] header = in.readNBytes(HEADER_SIZE);
        if (header.length == 0) {
            return null;
        }
        if (header.length < HEADER_SIZE) {
            throw new MalformedFrameException("the connection ended inside a frame's header");
        }
        int type = header[0] & 0xff;
        int stream = header[1] & 0xff;
        if (header[2] != 0 || header[3] != 0) {
            throw new MalformedFrameException("a frame's reserved bytes are not 0");
        }
        long length = (header[4] & 0xffL) | (header[5] & 0xffL) << 8 | (header[6] & 0xffL) << 16 | (header[7] & 0xffL) << 24;
        int limit = switch (type) {
            case DATA -> {
                if (stream != STDOUT && stream != STDERR) {
                    throw new MalformedFrameException("output on stream " + stream + " (only 1, stdout, and 2, stderr)");
                }
                yield MAX_PAYLOAD;
            }
            case EXIT -> 2;
            case ERROR -> MAX_ERROR_TEXT;
            default -> throw new MalformedFrameException("a frame of type " + type + ", which the guest does not send");
        };
        if (type != DATA && stream != 0) {
            throw new MalformedFrameException("a frame of type " + type + " on stream " + stream + " (only 0)");
        }
        if (length > limit) {
            throw new MalformedFrameException("a frame of type " + type + " with " + length + " bytes (at most " + limit + ")");
        }
        byte[] payload = in.readNBytes((int) length);
        if (payload.length < length) {
            throw new MalformedFrameException("the connection ended inside a frame");
        }
        return switch (type) {
            case DATA -> new Output(stream, payload);
            case EXIT -> exit(payload);
            default -> new AgentError(new String(payload, StandardCharsets.UTF_8));
        };
    }

    private static GuestFrame exit(byte[] payload) throws MalformedFrameException {
        if (payload.length != 2) {
            throw new MalformedFrameException("an exit frame of " + payload.length + " bytes (2)");
        }
        int value = payload[1] & 0xff;
        return switch (payload[0]) {
            case 0 -> new Exited(value);
            case 1 -> {
                if (value < 1 || value > MAX_SIGNAL) {
                    throw new MalformedFrameException("signal " + value + " (1 to " + MAX_SIGNAL + ")");
                }
                yield new Signalled(value);
            }
            default -> throw new MalformedFrameException("an exit frame of kind " + payload[0] + " (0, exited, or 1, signalled)");
        };
    }

    /** The exit status for how the command ended, as a shell gives it: its own, or 128 + the signal. */
    static int exitStatus(GuestFrame end) {
        return switch (end) {
            case Exited e -> e.status();
            case Signalled s -> 128 + s.signal();
            default -> throw new IllegalArgumentException("not the command's end: " + end);
        };
    }
}
