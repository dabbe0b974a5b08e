package dev.panamax.rig;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * The frames a {@link WarmRig} client and the {@link RigDaemon} exchange on the daemon's socket: a
 * type byte, a payload length (4 bytes, big-endian) and the payload. One reader and one writer per
 * end; writes are whole frames under the writer's lock, so output and answers never interleave.
 *
 * <p>Client to daemon: {@link #HELLO} (protocol, build key and the rig options wanted, as lines),
 * then any number of {@link #RUN}s one after another, each followed by {@link #INPUT}, {@link #END_OF_INPUT}
 * and {@link #KILL} as the command's stdin and the user's Ctrl-] come; or instead of the hello one
 * {@link #STATUS} or {@link #STOP}. Daemon to client: {@link #PROGRESS} lines while a rig starts,
 * then {@link #READY} (the scratch directory), {@link #BUSY}, {@link #STALE} or {@link #FAILED};
 * during a run {@link #OUTPUT}, ended by {@link #EXIT} or {@link #STOPPED}.
 */
final class WarmRigWire {
    static final int PROTOCOL = 1;
    /** Larger than any script or output chunk either end writes; a longer frame is a broken peer. */
    static final int MAX_PAYLOAD = 1 << 20;

    static final byte HELLO = 'H';
    static final byte RUN = 'R';
    static final byte INPUT = 'I';
    static final byte END_OF_INPUT = 'E';
    static final byte KILL = 'K';
    static final byte STATUS = 'Q';
    static final byte STOP = 'S';

    static final byte PROGRESS = 'P';
    static final byte READY = 'A';
    static final byte BUSY = 'B';
    static final byte STALE = 'T';
    static final byte FAILED = 'F';
    static final byte OUTPUT = 'O';
    static final byte EXIT = 'X';
    static final byte STOPPED = 'Z';

    record Frame(byte type, byte[] payload) {
        String text() {
            return new String(payload, StandardCharsets.UTF_8);
        }
    }

    private final DataInputStream in;
    private final DataOutputStream out;

    WarmRigWire(InputStream in, OutputStream out) {
        this.in = new DataInputStream(in);
        this.out = new DataOutputStream(out);
    }

    /** The next frame; null when the peer closed the connection between frames. */
    Frame read() throws IOException {
        int type = in.read();
        if (type < 0) return null;
        int length;
        try {
            length = in.readInt();
        } catch (EOFException e) {
            throw new IOException("the connection ended inside a frame header");
        }
        if (length < 0 || length > MAX_PAYLOAD) throw new IOException("a frame of " + length + " bytes (at most " + MAX_PAYLOAD + ")");
        byte[] payload = new byte[length];
        in.readFully(payload);
        return new Frame((byte) type, payload);
    }

    void write(byte type, byte[] payload, int off, int len) throws IOException {
        synchronized (out) {
            out.writeByte(type);
            out.writeInt(len);
            out.write(payload, off, len);
            out.flush();
        }
    }

    void write(byte type, byte[] payload) throws IOException {
        write(type, payload, 0, payload.length);
    }

    void write(byte type, String text) throws IOException {
        write(type, text.getBytes(StandardCharsets.UTF_8));
    }

    void write(byte type) throws IOException {
        write(type, new byte[0]);
    }
}
