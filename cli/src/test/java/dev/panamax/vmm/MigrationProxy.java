package dev.panamax.vmm;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A man in the middle of a migration, for the fault tests: it forwards the source's messages to
 * the destination and the answers back, and breaks the connection (or a message) at a chosen
 * point, as a network or a broken host would.
 */
final class MigrationProxy implements AutoCloseable {
    /** What to do to the message the source sends ({@code SLOW}: to every message of the type, carried at {@link #SLOW_LINK} only). */
    enum Fault { NONE, CUT_BEFORE, CORRUPT, CUT_ANSWER_AFTER, SLOW }

    /** The bytes per second a {@link Fault#SLOW} link carries: far below what any guest dirties. */
    static final long SLOW_LINK = 16L << 20;

    private final ServerSocketChannel server;
    private final Path destination;
    private final Fault fault;
    private final MigrationWire.Type at;
    private final AtomicBoolean sentAt = new AtomicBoolean();
    private volatile SocketChannel source;
    private volatile SocketChannel target;
    private final Thread thread;

    /** Listens at {@code listen}; breaks per {@code fault} at the first message of type {@code at} from the source. */
    MigrationProxy(Path listen, Path destination, Fault fault, MigrationWire.Type at) throws IOException {
        this.server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(listen));
        this.destination = destination;
        this.fault = fault;
        this.at = at;
        this.thread = Thread.ofPlatform().daemon().name("migration-proxy").start(this::forwardSource);
    }

    private void forwardSource() {
        try {
            source = server.accept();
            target = SocketChannel.open(UnixDomainSocketAddress.of(destination));
            Thread.ofPlatform().daemon().name("migration-proxy-answers").start(this::forwardAnswers);
            while (true) {
                ByteBuffer frame = readFrame(source);
                MigrationWire.Type type = MigrationWire.Type.of(frame.getInt(4));
                if (type == at && !sentAt.get()) {
                    if (fault == Fault.CUT_BEFORE) {
                        closeBoth();
                        return;
                    }
                    if (fault == Fault.CORRUPT) {
                        int i = MigrationWire.HEADER + (frame.limit() - MigrationWire.HEADER - MigrationWire.TRAILER) / 2;
                        frame.put(i, (byte) (frame.get(i) ^ 0x40));
                    }
                }
                if (type == at) {
                    sentAt.set(true); // before it goes: the answer to it may come back at once
                    if (fault == Fault.SLOW) {
                        Thread.sleep(frame.limit() * 1000L / SLOW_LINK);
                    }
                }
                write(target, frame);
            }
        } catch (IOException e) {
            closeBoth();
        } catch (InterruptedException e) {
            closeBoth();
            Thread.currentThread().interrupt();
        }
    }

    private void forwardAnswers() {
        try {
            while (true) {
                ByteBuffer frame = readFrame(target);
                if (fault == Fault.CUT_ANSWER_AFTER && sentAt.get()) {
                    closeBoth();
                    return;
                }
                write(source, frame);
            }
        } catch (IOException e) {
            closeBoth();
        }
    }

    private static ByteBuffer readFrame(SocketChannel from) throws IOException {
        ByteBuffer header = ByteBuffer.allocate(MigrationWire.HEADER).order(ByteOrder.LITTLE_ENDIAN);
        readFully(from, header);
        int length = header.getInt(8);
        ByteBuffer frame = ByteBuffer.allocate(MigrationWire.HEADER + length + MigrationWire.TRAILER).order(ByteOrder.LITTLE_ENDIAN);
        frame.put(header.flip());
        readFully(from, frame);
        return frame.flip();
    }

    private static void readFully(SocketChannel from, ByteBuffer into) throws IOException {
        while (into.hasRemaining()) {
            if (from.read(into) < 0) {
                throw new IOException("closed");
            }
        }
    }

    private static void write(SocketChannel to, ByteBuffer frame) throws IOException {
        while (frame.hasRemaining()) {
            to.write(frame);
        }
    }

    private void closeBoth() {
        for (SocketChannel c : new SocketChannel[] {source, target}) {
            if (c != null) {
                try {
                    c.close();
                } catch (IOException ignored) {
                    // closing anyway
                }
            }
        }
    }

    @Override
    public void close() throws IOException {
        closeBoth();
        server.close();
        thread.interrupt();
    }
}
