package dev.panamax.it;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The host programs of {@link VsockRigTest}, run next to the VM (where its Unix sockets are), with
 * Firecracker's host side of vsock: {@code CONNECT <port>\n}, {@code OK <host port>\n}, then the
 * stream; and {@code <uds>_<port>} for the guest's connections to the host. Prints one line per
 * check, {@code NAME=ok} or {@code NAME=<what went wrong>}; {@code g2h-sha=<hex>} for the data the
 * guest sent. Ports, as the test's guest listens: 5000 answers the SHA-256 of what it read, 5001
 * sends zeros for ever, 5002 ends the guest's script.
 */
public final class VsockPeer {
    private static final int SHA_PORT = 5000;
    private static final int ZEROS_PORT = 5001;
    private static final int DONE_PORT = 5002;
    private static final int GUEST_TO_HOST_PORT = 6000;
    private static final int NOBODY_PORT = 7000;

    private VsockPeer() {}

    public static void main(String[] args) throws Exception {
        Path uds = Path.of(args[0]);
        long deadline = System.nanoTime() + 480_000_000_000L;
        Thread.ofPlatform().daemon().start(() -> { // a hung step must not hang the rig's script
            while (System.nanoTime() < deadline) {
                sleep(1000);
            }
            System.out.println("peer: out of time");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        });
        Path fromGuest = Path.of(uds + "_" + GUEST_TO_HOST_PORT);
        Files.deleteIfExists(fromGuest);
        ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX).bind(UnixDomainSocketAddress.of(fromGuest));
        Thread receiver = Thread.ofPlatform().start(() -> {
            try (SocketChannel c = listener.accept()) {
                MessageDigest sha = sha256();
                ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
                long total = 0;
                while (c.read(buf.clear()) >= 0) {
                    sha.update(buf.flip());
                    total += buf.position();
                }
                System.out.println("g2h-bytes=" + total);
                System.out.println("g2h-sha=" + HexFormat.of().formatHex(sha.digest()));
            } catch (IOException e) {
                System.out.println("g2h-sha=failed: " + e);
            }
        });

        // The guest's listeners come up after its boot: wait until one answers.
        awaitListener(uds, SHA_PORT);
        System.out.println("h2g=" + shaRoundTrip(uds, 16 << 20, 1));

        ExecutorService pool = Executors.newFixedThreadPool(20);
        List<Future<String>> results = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            int seed = 100 + i;
            results.add(pool.submit(() -> shaRoundTrip(uds, 512 << 10, seed)));
        }
        List<String> failed = new ArrayList<>();
        for (Future<String> f : results) {
            String r = f.get();
            if (!r.equals("ok")) failed.add(r);
        }
        pool.shutdown();
        System.out.println("concurrent-20=" + (failed.isEmpty() ? "ok" : failed));

        System.out.println("refused=" + refused(uds, NOBODY_PORT));

        // A host program that reads a little of an endless stream and vanishes; the VM goes on.
        try (SocketChannel c = connect(uds, ZEROS_PORT)) {
            c.read(ByteBuffer.allocate(1 << 20));
        }
        System.out.println("after-vanish=" + shaRoundTrip(uds, 64 << 10, 7));

        receiver.join();
        listener.close();
        Files.deleteIfExists(fromGuest);
        // The guest listens on DONE_PORT once its own checks are over: maybe not yet.
        awaitListener(uds, DONE_PORT);
        System.out.flush();
    }

    /** Sends {@code bytes} of seeded random data to the guest's SHA port; "ok" when its answer matches. */
    private static String shaRoundTrip(Path uds, int bytes, long seed) {
        byte[] data = new byte[bytes];
        new Random(seed).nextBytes(data);
        String expected = HexFormat.of().formatHex(sha256().digest(data));
        try (SocketChannel c = connect(uds, SHA_PORT)) {
            ByteBuffer out = ByteBuffer.wrap(data);
            while (out.hasRemaining()) {
                c.write(out);
            }
            c.shutdownOutput();
            String answer = readAll(c).trim();
            String got = answer.length() >= 64 ? answer.substring(0, 64) : answer;
            return got.equals(expected) ? "ok" : "sent " + expected + ", the guest read " + answer;
        } catch (IOException e) {
            return "failed: " + e;
        }
    }

    /** "ok" when a CONNECT to a port nobody listens on ends without {@code OK}. */
    private static String refused(Path uds, int port) {
        try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(uds))) {
            c.write(ByteBuffer.wrap(("CONNECT " + port + "\n").getBytes(StandardCharsets.US_ASCII)));
            String answer = readAll(c);
            return answer.isEmpty() ? "ok" : "answered " + answer.strip();
        } catch (IOException e) {
            return "ok"; // reset: refused as well
        }
    }

    /** Connects to the guest's {@code port} once it listens (and closes again at once). */
    private static void awaitListener(Path uds, int port) throws IOException {
        for (int i = 0; i < 300; i++) {
            if (Files.exists(uds)) {
                try {
                    connect(uds, port).close();
                    return;
                } catch (IOException notYet) {
                    // the guest is not listening yet
                }
            }
            sleep(1000);
        }
        throw new IOException("the guest never listened on port " + port);
    }

    /** A stream to the guest's {@code port}, after the {@code OK} line. */
    private static SocketChannel connect(Path uds, int port) throws IOException {
        SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(uds));
        try {
            c.write(ByteBuffer.wrap(("CONNECT " + port + "\n").getBytes(StandardCharsets.US_ASCII)));
            StringBuilder line = new StringBuilder();
            ByteBuffer one = ByteBuffer.allocate(1);
            while (true) {
                if (c.read(one.clear()) < 0) {
                    throw new IOException("port " + port + ": closed before OK (" + line + ")");
                }
                char ch = (char) one.get(0);
                if (ch == '\n') break;
                line.append(ch);
            }
            if (!line.toString().startsWith("OK ")) {
                throw new IOException("port " + port + ": answered " + line);
            }
            return c;
        } catch (IOException e) {
            c.close();
            throw e;
        }
    }

    private static String readAll(SocketChannel c) throws IOException {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        ByteBuffer buf = ByteBuffer.allocate(4096);
        while (c.read(buf.clear()) >= 0) {
            all.write(buf.array(), 0, buf.position());
        }
        return all.toString(StandardCharsets.US_ASCII);
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
