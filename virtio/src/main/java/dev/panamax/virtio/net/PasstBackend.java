package dev.panamax.virtio.net;

import dev.panamax.sys.Fd;
import dev.panamax.sys.NativeCallException;
import dev.panamax.sys.NativeIoException;
import dev.panamax.sys.UnixStream;
import java.io.File;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.UserPrincipal;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;

/**
 * A NIC on passt's user-mode network: no privileges needed, passt answers ARP, DHCP and NDP itself
 * and carries the guest's TCP, UDP and ICMP over sockets of this host. passt speaks plain Ethernet
 * frames over a Unix stream socket, each behind its length as a 4-byte big-endian number (as QEMU's
 * stream netdev). It finishes no checksums and segments nothing, so this backend offers no offloads:
 * frames go out without their virtio-net header, and come in behind a plain one.
 */
public final class PasstBackend implements NetBackend {
    private static final Duration START_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(5);
    private static final int PREFIX_BYTES = 4;
    private static final ValueLayout.OfInt BE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    /** A passt started as root switches to this user (its --runas default) before it binds its socket. */
    private static final String PASST_ROOT_USER = "nobody";

    private final UnixStream stream;
    private final Process passt; // null when connected to a passt started by someone else
    private final Path directory; // the socket's and log's, removed on close; null likewise
    private final AtomicBoolean closed = new AtomicBoolean();
    private final DropCounts dropped = new DropCounts();

    // Freed by the GC, not by close(): an I/O thread may still be inside read() when another closes.
    private final Arena arena = Arena.ofAuto();
    // The receiving thread's: the frame being read, which may arrive in any number of pieces. Only
    // the current frame's bytes are read, so that a frame still in the socket keeps it readable.
    private final MemorySegment prefixIn = arena.allocate(PREFIX_BYTES);
    private final MemorySegment frameIn = arena.allocate(VirtioNetHeader.MAX_FRAME_BYTES);
    private long inboundLength = -1; // of the frame being read; -1 while its prefix is
    private long inboundFilled; // bytes of the prefix, or of the frame, read so far
    private boolean inboundDropped; // the frame being read is to be skipped
    // The sending thread's: a prefixed frame and how much of it the socket has taken.
    private final MemorySegment outbound = arena.allocate(PREFIX_BYTES + VirtioNetHeader.MAX_FRAME_BYTES);
    private int outboundLength;
    private int outboundSent;

    private PasstBackend(UnixStream stream, Process passt, Path directory) {
        this.stream = stream;
        this.passt = passt;
        this.directory = directory;
    }

    /**
     * Starts passt for this NIC alone, its socket and log in a private temporary directory; passt
     * ends when this backend is closed (or, should this process die, when its socket closes).
     *
     * @throws NetBackendException when passt is not installed or does not start, with its log
     */
    public static PasstBackend start() {
        return start("passt");
    }

    static PasstBackend start(String executable) {
        Path directory;
        try {
            directory = Files.createTempDirectory("panamax-passt-"); // mode 0700
        } catch (IOException e) {
            throw new NetBackendException("cannot create a directory for passt's socket: " + e.getMessage(), e);
        }
        Path socket = directory.resolve("passt.sock");
        Path log = directory.resolve("passt.log");
        try {
            letPasstBindIn(directory);
        } catch (IOException e) {
            deleteTree(directory);
            throw new NetBackendException("passt started as root binds its socket as user " + PASST_ROOT_USER + ", and " + directory
                    + " cannot be handed to that user (" + e + "); run Panamax as an ordinary user for --net user", e);
        }
        Process process = null;
        try {
            process = new ProcessBuilder(executable, "--foreground", "--one-off", "--socket", socket.toString())
                    .redirectErrorStream(true).redirectOutput(log.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            return new PasstBackend(awaitSocket(process, socket, log), process, directory);
        } catch (IOException e) {
            deleteTree(directory);
            throw new NetBackendException("cannot run " + executable + " (" + e.getMessage() + "): user-mode networking needs passt;"
                    + " install it with `apt-get install passt`", e);
        } catch (RuntimeException e) {
            stop(process);
            deleteTree(directory);
            throw e;
        }
    }

    /**
     * Connects to a passt someone else started ({@code passt --socket PATH}).
     *
     * @throws NetBackendException when nothing listens at {@code socket}
     */
    public static PasstBackend connect(Path socket) {
        try {
            return new PasstBackend(UnixStream.connect(socket), null, null);
        } catch (IllegalArgumentException | NativeCallException e) {
            throw new NetBackendException("cannot connect to passt at " + socket + " (" + e.getMessage()
                    + "): start it with `passt --socket " + socket + "`, or let Panamax start one by leaving out socket=", e);
        }
    }

    /** A root passt binds its socket as {@link #PASST_ROOT_USER}, so that user must own the directory. */
    private static void letPasstBindIn(Path directory) throws IOException {
        if (((Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid")) == 0) {
            UserPrincipal user = directory.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(PASST_ROOT_USER);
            Files.setOwner(directory, user);
        }
    }

    private static UnixStream awaitSocket(Process process, Path socket, Path log) {
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        while (true) {
            if (!process.isAlive()) {
                throw new NetBackendException("passt exited with status " + process.exitValue() + " before opening its socket; "
                        + logTail(log));
            }
            UnixStream stream;
            try {
                stream = UnixStream.connectIfListening(socket);
            } catch (NativeCallException e) {
                throw new NetBackendException("cannot connect to passt's socket " + socket + ": " + e.getMessage(), e);
            }
            if (stream != null) {
                return stream;
            }
            if (System.nanoTime() > deadline) {
                throw new NetBackendException("passt did not open its socket " + socket + " within " + START_TIMEOUT.toSeconds()
                        + " s; " + logTail(log));
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new NetBackendException("interrupted while waiting for passt to start", e);
            }
        }
    }

    @Override
    public Set<NetOffload> offloads() {
        return Set.of();
    }

    @Override
    public void setReceiveOffloads(Set<NetOffload> offloads) {
        if (!offloads.isEmpty()) {
            throw new IllegalArgumentException("passt offers no offloads, so none can be enabled: " + offloads);
        }
    }

    @Override
    public boolean send(MemorySegment[] packet, int count) {
        if (outboundSent < outboundLength) {
            return flush(); // the caller's retry of the frame the socket took part of
        }
        long frameBytes = VirtioNetHeader.frameBytes(packet, count);
        if (!VirtioNetHeader.acceptableFromGuest(packet[0], frameBytes, Set.of())) {
            dropped.countFromGuest();
            return true;
        }
        // Copied behind the length prefix: passt's stream may take part of a frame, and the rest waits here.
        outbound.set(BE32, 0, (int) frameBytes);
        long at = PREFIX_BYTES;
        for (int i = 1; i < count; i++) {
            MemorySegment.copy(packet[i], 0, outbound, at, packet[i].byteSize());
            at += packet[i].byteSize();
        }
        outboundLength = (int) at;
        outboundSent = 0;
        return flush();
    }

    private boolean flush() {
        while (outboundSent < outboundLength) {
            int count = outboundLength - outboundSent;
            int n;
            try {
                n = stream.write(outboundSent == 0 ? outbound : outbound.asSlice(outboundSent), count);
            } catch (NativeIoException e) {
                throw ended(e);
            }
            if (n == 0) {
                return false;
            }
            outboundSent += n;
        }
        outboundLength = 0;
        outboundSent = 0;
        return true;
    }

    @Override
    public int receive(MemorySegment buffer) {
        VirtioNetHeader.checkReceiveBuffer(buffer);
        while (true) {
            if (inboundLength < 0) {
                if (!readInbound(prefixIn, PREFIX_BYTES)) {
                    return 0;
                }
                inboundLength = prefixIn.get(BE32, 0) & 0xffffffffL;
                inboundFilled = 0;
                inboundDropped = inboundLength < VirtioNetHeader.MIN_FRAME_BYTES || inboundLength > VirtioNetHeader.MAX_FRAME_BYTES;
                if (inboundDropped) {
                    dropped.countToGuest();
                }
            } else if (inboundDropped) {
                long rest = inboundLength - inboundFilled;
                int n = rest == 0 ? 0 : read(frameIn, 0, (int) Math.min(rest, frameIn.byteSize()));
                if (rest != 0 && n == 0) {
                    return 0;
                }
                inboundFilled += n;
                if (inboundFilled == inboundLength) {
                    inboundLength = -1;
                    inboundFilled = 0;
                }
            } else {
                if (!readInbound(frameIn, inboundLength)) {
                    return 0;
                }
                int frameBytes = (int) inboundLength;
                inboundLength = -1;
                inboundFilled = 0;
                VirtioNetHeader.writePlain(buffer);
                MemorySegment.copy(frameIn, 0, buffer, HEADER_BYTES, frameBytes);
                return HEADER_BYTES + frameBytes;
            }
        }
    }

    /** Reads on into {@code target} until it holds {@code length} bytes; false when the socket has no more yet. */
    private boolean readInbound(MemorySegment target, long length) {
        while (inboundFilled < length) {
            int n = read(target, inboundFilled, (int) (length - inboundFilled));
            if (n == 0) {
                return false;
            }
            inboundFilled += n;
        }
        inboundFilled = 0;
        return true;
    }

    /** Up to {@code count} bytes into {@code target} at {@code offset}; 0 when none are waiting. */
    private int read(MemorySegment target, long offset, int count) {
        int n;
        try {
            n = stream.read(offset == 0 ? target : target.asSlice(offset), count);
        } catch (NativeIoException e) {
            throw ended(e);
        }
        if (n == UnixStream.END) {
            throw ended(null);
        }
        return n;
    }

    private NetBackendException ended(NativeIoException cause) {
        String why = cause == null ? "closed its connection" : "failed (" + cause.getMessage() + ")";
        if (passt == null) {
            return new NetBackendException("passt at " + stream.path() + " " + why + ": restart it, and the VM", cause);
        }
        String status = passt.isAlive() ? "" : " and exited with status " + passt.exitValue();
        return new NetBackendException("the passt of this NIC " + why + status + "; " + logTail(directory.resolve("passt.log")), cause);
    }

    @Override
    public Fd descriptor() {
        return stream;
    }

    @Override
    public DropCounts dropped() {
        return dropped;
    }

    @Override
    public void close() {
        if (closed.getAndSet(true)) {
            return;
        }
        stream.close();
        stop(passt);
        if (directory != null) {
            deleteTree(directory);
        }
    }

    @Override
    public String kind() {
        return "passt";
    }

    /** The socket of a passt someone else started; empty for the one started for this NIC, whose socket is a temporary name. */
    @Override
    public String name() {
        return passt == null ? String.valueOf(stream.path()) : "";
    }

    @Override
    public String toString() {
        return "passt at " + stream.path();
    }

    private static void stop(Process process) {
        if (process == null) {
            return;
        }
        process.destroy();
        try {
            if (!process.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    /** The end of passt's log, for an error message. */
    private static String logTail(Path log) {
        try (Stream<String> lines = Files.lines(log)) {
            // Without a syslog daemon (containers, CI), passt says so for every line it logs.
            List<String> said = lines.filter(l -> !l.isBlank() && !l.startsWith("Failed to send")).toList();
            List<String> tail = said.subList(Math.max(0, said.size() - 8), said.size());
            return tail.isEmpty() ? "its log " + log + " is empty" : "its log ends: " + String.join(" | ", tail);
        } catch (IOException e) {
            return "its log " + log + " cannot be read: " + e.getMessage();
        }
    }

    private static void deleteTree(Path directory) {
        try (Stream<Path> entries = Files.list(directory)) {
            for (Path p : entries.toList()) Files.deleteIfExists(p);
            Files.deleteIfExists(directory);
        } catch (IOException e) {
            // A leftover empty directory in /tmp is harmless; failing close() over it would not be.
        }
    }
}
