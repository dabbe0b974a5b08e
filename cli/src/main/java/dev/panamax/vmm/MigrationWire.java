package dev.panamax.vmm;

import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.zip.CRC32C;

/**
 * The messages of Panamax's live migration protocol ({@code docs/migration-protocol.md}) on a
 * stream socket: each a header (magic {@code PMIG}, type, payload length, little-endian u32 each),
 * the payload, and a CRC-32C of header and payload. A message is checked whole (magic, type, the
 * type's length limit, checksum) before its payload is looked at. Every receive has a deadline:
 * a peer that says nothing for that long ends the migration, never hangs it.
 */
final class MigrationWire implements AutoCloseable {
    static final int MAGIC = 0x47494d50; // "PMIG" read as a little-endian u32
    /** The protocol version this Panamax speaks; a peer must speak the same. 2: HELLO carries the state format version. */
    static final int VERSION = 2;
    static final int HEADER = 12;
    /** How long a broken send waits for the ERROR that may explain it. */
    private static final Duration PEER_ERROR_WAIT = Duration.ofSeconds(2);
    static final int TRAILER = 4;
    /** The guest memory one MEMORY message carries at most, so that its buffer stays small. */
    static final int MEMORY_CHUNK = 4 << 20;

    /** HELLO's payload: the versions of the protocol and of the VM state format the source speaks, and its name. */
    static byte[] hello(int protocolVersion, int stateFormatVersion) {
        return new StateWriter().i32(protocolVersion).i32(stateFormatVersion).string("panamax").toByteArray();
    }

    /** The kinds of message, with the largest payload each may have. */
    enum Type {
        /** source: protocol version, VM state format version and software; answered by ACK or ERROR */
        HELLO(1, 4096),
        /** source: the machine's configuration, memory map and CPUID; answered once the destination is ready for memory */
        CONFIG(2, 1 << 20),
        /** source: runs of guest pages, unanswered */
        MEMORY(3, MEMORY_CHUNK + 64 * 1024),
        /** source: the end of a round of memory; answered */
        ROUND_END(4, 64),
        /** source, with its guest paused and disks released: vCPU, VM and device state; answered once the destination holds it all */
        STATE(5, 64 << 20),
        /** source: the commit, after which only the destination may run the guest; answered once it runs */
        GO(6, 64),
        /** source: the migration is abandoned, with why */
        CANCEL(7, 4096),
        /** either: the step is done */
        ACK(8, 4096),
        /** either: the step failed, with why */
        ERROR(9, 4096);

        final int code;
        final int maxPayload;

        Type(int code, int maxPayload) {
            this.code = code;
            this.maxPayload = maxPayload;
        }

        static Type of(int code) {
            for (Type t : values()) {
                if (t.code == code) {
                    return t;
                }
            }
            return null;
        }
    }

    /** A message received: its type and its payload, checked against the checksum, little-endian, positioned at 0. */
    record Message(Type type, ByteBuffer payload) {
        byte[] bytes() {
            byte[] b = new byte[payload.remaining()];
            payload.duplicate().get(b);
            return b;
        }
    }

    /** The ERROR the peer sent, as thrown by {@link #receive}; null until one came. */
    private MigrationException peerError;
    private static final ScheduledExecutorService DEADLINES = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "migration-deadlines");
        t.setDaemon(true);
        return t;
    });

    private final SocketChannel channel;
    private final String peer;
    private final ByteBuffer header = ByteBuffer.allocateDirect(HEADER).order(ByteOrder.LITTLE_ENDIAN);
    private final ByteBuffer trailer = ByteBuffer.allocateDirect(TRAILER).order(ByteOrder.LITTLE_ENDIAN);
    private ByteBuffer payload = ByteBuffer.allocateDirect(64 * 1024).order(ByteOrder.LITTLE_ENDIAN);
    private final CRC32C crc = new CRC32C();
    private long bytesSent;

    /** @param peer what messages call the other end: "the destination at tcp:h:p", "the source" */
    MigrationWire(SocketChannel channel, String peer) {
        this.channel = channel;
        this.peer = peer;
    }

    String peer() {
        return peer;
    }

    long bytesSent() {
        return bytesSent;
    }

    /** Sends a message whose payload is {@code parts} one after another (each read from its position to its limit). */
    void send(Type type, ByteBuffer... parts) throws MigrationException {
        long length = 0;
        for (ByteBuffer p : parts) {
            length += p.remaining();
        }
        if (length > type.maxPayload) {
            throw new IllegalArgumentException(type + " payload of " + length + " bytes, over its limit of " + type.maxPayload);
        }
        header.clear();
        header.putInt(MAGIC).putInt(type.code).putInt((int) length).flip();
        crc.reset();
        crc.update(header.duplicate());
        for (ByteBuffer p : parts) {
            crc.update(p.duplicate());
        }
        trailer.clear();
        trailer.putInt((int) crc.getValue()).flip();
        ByteBuffer[] all = new ByteBuffer[parts.length + 2];
        all[0] = header;
        System.arraycopy(parts, 0, all, 1, parts.length);
        all[all.length - 1] = trailer;
        try {
            long total = HEADER + length + TRAILER;
            long written = 0;
            while (written < total) {
                written += channel.write(all);
            }
            bytesSent += total;
        } catch (IOException e) {
            throw whyItBroke(new MigrationException("the connection to " + peer + " broke while sending " + type + ": "
                    + MigrationAddress.describe(e), e));
        }
    }

    /**
     * The peer's own ERROR, when it sent one before closing the connection under a send (a
     * destination refusing a MEMORY message, say, while the source sends on), else {@code broke}.
     */
    private MigrationException whyItBroke(MigrationException broke) {
        try {
            receive(PEER_ERROR_WAIT, "why it closed the connection");
        } catch (MigrationException e) {
            if (e == peerError) {
                e.addSuppressed(broke);
                return e;
            }
        }
        return broke;
    }

    /** Sends a message whose payload is {@code bytes}. */
    void send(Type type, byte[] bytes) throws MigrationException {
        send(type, ByteBuffer.wrap(bytes));
    }

    /**
     * The next message, whole and checked, waiting at most {@code timeout}; an ERROR from the peer
     * is thrown as a {@link MigrationException} with its text. The payload stays valid until the
     * next receive.
     *
     * @param waitingFor what the wait is for, for the message when it times out
     */
    Message receive(Duration timeout, String waitingFor) throws MigrationException {
        AtomicBoolean expired = new AtomicBoolean();
        ScheduledFuture<?> deadline = DEADLINES.schedule(() -> {
            expired.set(true);
            try {
                channel.close(); // the only way to end a blocking read on a socket channel
            } catch (IOException ignored) {
                // closing anyway
            }
        }, timeout.toMillis(), TimeUnit.MILLISECONDS);
        try {
            header.clear();
            readFully(header);
            header.flip();
            int magic = header.getInt();
            int code = header.getInt();
            long length = Integer.toUnsignedLong(header.getInt());
            if (magic != MAGIC) {
                throw new MigrationException(String.format("%s sent something that is not a Panamax migration message (magic 0x%08x,"
                        + " not 0x%08x): is it a Panamax of the same protocol version?", peer, magic, MAGIC));
            }
            Type type = Type.of(code);
            if (type == null) {
                throw new MigrationException(peer + " sent a message of unknown type " + Integer.toUnsignedString(code));
            }
            if (length > type.maxPayload) {
                throw new MigrationException(peer + " sent a " + type + " message of " + length + " bytes; such a message has at most "
                        + type.maxPayload);
            }
            if (payload.capacity() < length) {
                payload = ByteBuffer.allocateDirect((int) Math.max(length, Math.min(type.maxPayload, 2L * payload.capacity())))
                        .order(ByteOrder.LITTLE_ENDIAN);
            }
            payload.clear().limit((int) length);
            readFully(payload);
            payload.flip();
            trailer.clear();
            readFully(trailer);
            trailer.flip();
            crc.reset();
            crc.update(header.flip());
            crc.update(payload.duplicate());
            int stored = trailer.getInt();
            if (stored != (int) crc.getValue()) {
                throw new MigrationException(String.format("a %s message from %s is corrupt: its checksum is 0x%08x, and its bytes sum"
                        + " to 0x%08x", type, peer, stored, (int) crc.getValue()));
            }
            Message message = new Message(type, payload.duplicate().order(ByteOrder.LITTLE_ENDIAN));
            if (type == Type.ERROR) {
                peerError = new MigrationException(peer + " failed: " + text(message));
                throw peerError;
            }
            return message;
        } catch (MigrationException e) {
            throw e;
        } catch (IOException e) {
            if (expired.get()) {
                throw new MigrationException(peer + " sent nothing for " + timeout.toSeconds() + " s while waiting for " + waitingFor, e);
            }
            throw new MigrationException("the connection to " + peer + " broke while waiting for " + waitingFor + ": "
                    + (e instanceof ClosedChannelException && !(e instanceof AsynchronousCloseException) ? "it is closed"
                            : MigrationAddress.describe(e)), e);
        } finally {
            deadline.cancel(false);
        }
    }

    /** The next message, which must be of type {@code expected}. */
    Message expect(Type expected, Duration timeout, String waitingFor) throws MigrationException {
        Message m = receive(timeout, waitingFor);
        if (m.type() != expected) {
            throw new MigrationException(peer + " sent " + m.type() + " while " + waitingFor + " was expected ("
                    + expected + "); the protocol is broken");
        }
        return m;
    }

    /** A message's payload as the UTF-8 text of an ACK, ERROR or CANCEL, control characters replaced. */
    static String text(Message m) {
        return new String(m.bytes(), java.nio.charset.StandardCharsets.UTF_8).replaceAll("\\p{Cntrl}", "?");
    }

    /** Sends an ERROR with {@code text}, if the connection still takes it: the step already failed. */
    void sendErrorQuietly(Type type, String text) {
        try {
            byte[] bytes = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            send(type, java.util.Arrays.copyOf(bytes, Math.min(bytes.length, Type.ERROR.maxPayload)));
        } catch (MigrationException | RuntimeException ignored) {
            // the peer is gone; the failure is reported here
        }
    }

    private void readFully(ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            if (channel.read(buffer) < 0) {
                throw new IOException("the peer closed the connection");
            }
        }
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // nothing to save
        }
    }
}
