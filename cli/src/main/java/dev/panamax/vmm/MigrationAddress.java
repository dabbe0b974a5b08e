package dev.panamax.vmm;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;

/**
 * Where a live migration's destination listens: {@code tcp:HOST:PORT} ({@code tcp:[::1]:PORT} for
 * an IPv6 address) or {@code unix:PATH}, as QEMU's {@code -incoming} spells them.
 *
 * @param text the address as given, for messages
 */
public record MigrationAddress(String text, SocketAddress socket) {
    public MigrationAddress {
        Objects.requireNonNull(text, "text");
        Objects.requireNonNull(socket, "socket");
    }

    /**
     * @throws IllegalArgumentException with a sentence when {@code text} is neither form
     */
    public static MigrationAddress parse(String text) {
        if (text.startsWith("unix:")) {
            String path = text.substring(5);
            if (path.isEmpty()) {
                throw new IllegalArgumentException("'" + text + "' names no socket path: use unix:PATH");
            }
            try {
                return new MigrationAddress(text, UnixDomainSocketAddress.of(Path.of(path)));
            } catch (InvalidPathException e) {
                throw new IllegalArgumentException("'" + text + "' is not a socket path: " + e.getReason());
            }
        }
        if (!text.startsWith("tcp:")) {
            throw new IllegalArgumentException("'" + text + "' is not a migration address: use tcp:HOST:PORT or unix:PATH");
        }
        String rest = text.substring(4);
        int colon = rest.lastIndexOf(':');
        if (colon <= 0) {
            throw new IllegalArgumentException("'" + text + "' has no port: use tcp:HOST:PORT");
        }
        String host = rest.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(rest.substring(colon + 1));
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("'" + text + "': the port must be a number from 0 to 65535");
        }
        return new MigrationAddress(text, InetSocketAddress.createUnresolved(host, port));
    }

    /**
     * Listens at the address; a Unix socket's file must not exist yet.
     *
     * @throws IOException naming the address when it cannot be bound
     */
    public ServerSocketChannel listen() throws IOException {
        try {
            if (socket instanceof UnixDomainSocketAddress unix) {
                if (Files.exists(unix.getPath(), java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                    throw new IOException("something is already at " + unix.getPath() + "; remove it or listen elsewhere");
                }
                ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                server.bind(unix);
                return server;
            }
            ServerSocketChannel server = ServerSocketChannel.open();
            server.bind(resolved());
            return server;
        } catch (IOException e) {
            throw new IOException("cannot listen for a migration at " + text + ": " + e.getMessage(), e);
        }
    }

    /**
     * Connects to a destination listening at the address, waiting at most {@code timeout}.
     *
     * @throws MigrationException when nothing answers in time or the connection is refused
     */
    public SocketChannel connect(Duration timeout) throws MigrationException {
        SocketChannel channel = null;
        try {
            if (socket instanceof UnixDomainSocketAddress unix) {
                channel = SocketChannel.open(StandardProtocolFamily.UNIX);
                channel.connect(unix); // local: answers or fails at once
            } else {
                channel = SocketChannel.open();
                channel.socket().connect(resolved(), Math.toIntExact(Math.max(1, timeout.toMillis())));
            }
            return channel;
        } catch (IOException e) {
            if (channel != null) {
                try {
                    channel.close();
                } catch (IOException ignored) {
                    // already failing
                }
            }
            throw new MigrationException("cannot reach the destination at " + text + ": " + describe(e)
                    + " (is 'panamax run --incoming " + text + "' waiting there?)", e);
        }
    }

    private InetSocketAddress resolved() throws IOException {
        InetSocketAddress unresolved = (InetSocketAddress) socket;
        InetSocketAddress address = new InetSocketAddress(unresolved.getHostString(), unresolved.getPort());
        if (address.isUnresolved()) {
            throw new IOException("unknown host " + unresolved.getHostString());
        }
        return address;
    }

    static String describe(IOException e) {
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    }

    @Override
    public String toString() {
        return text;
    }
}
