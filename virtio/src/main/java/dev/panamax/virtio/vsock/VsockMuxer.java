package dev.panamax.virtio.vsock;

import dev.panamax.sys.SyscallProfile;
import dev.panamax.virtio.DescriptorChain;
import dev.panamax.vm.ThreadSandbox;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedSelectorException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * The host side of a vsock device, as Firecracker's Unix-socket muxer: host programs connect to
 * {@code udsPath} and write {@code CONNECT <port>\n} to reach the guest's listener on that port
 * (answered {@code OK <host port>\n} once the guest accepts); a guest connection to host port P goes
 * to the Unix socket {@code <udsPath>_<P>}, where a host program listens.
 *
 * <p>Three threads meet here, under this object's lock, and no socket call blocks: the muxer's own
 * thread ({@code <name>-host}) accepts, reads CONNECT lines, watches the host sockets with a NIO
 * {@link Selector} and writes what the guest sent and the host socket could not take at once; the
 * transmit queue's thread hands in each packet from the guest ({@link #fromGuest}); the receive
 * queue's thread takes each packet for the guest ({@link #nextForGuest}), reading host data straight
 * from the socket. Memory is bounded: per connection at most {@link #BUFFER_BYTES} from the guest
 * (the credit it was given; a guest sending more is reset), nothing from the host beyond the
 * packet being filled, at most {@link #MAX_CONNECTIONS} connections and as many RSTs waiting.
 *
 * <p>Either side may half-close, as over TCP: a host program's end of stream (close, or shutdown of
 * its output while it still reads the answer) reaches the guest as SHUTDOWN SEND, the guest's
 * SHUTDOWN SEND becomes the socket's {@code shutdownOutput}; the connection ends with an RST once
 * neither side sends any more.
 */
final class VsockMuxer implements AutoCloseable {
    /** The most connections, established or being set up, at once. */
    static final int MAX_CONNECTIONS = 1024;
    /** The credit (buf_alloc) each connection gives the guest: bytes from it the host socket has not taken yet. */
    static final int BUFFER_BYTES = 64 * 1024;
    /** A credit update goes to the guest once the credit it knows of falls below this and more is free. */
    static final int CREDIT_UPDATE_THRESHOLD = BUFFER_BYTES / 2;
    /** Host ports given to host programs' connections start here, as Firecracker's. */
    static final int FIRST_LOCAL_PORT = 1 << 30;
    /** How long a host program has to send its CONNECT line, and the guest to accept or close: Firecracker's 2 s. */
    static final long TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(2);
    /** The longest CONNECT line: {@code CONNECT 4294967295} and a newline, with room to spare. */
    static final int MAX_CONNECT_LINE = 32;

    private static final System.Logger LOG = System.getLogger(VsockMuxer.class.getName());

    private final String name;
    private final long guestCid;
    private final Path udsPath;
    private final VsockCounts counts;
    private final int maxConnections;
    private final Runnable wakeGuestSide;
    private final Selector selector;
    private final ServerSocketChannel listener;
    private final Thread thread;
    private volatile boolean stopping;
    /** Set once the VM's threads are to be filtered: the muxer's thread then confines itself to {@link SyscallProfile#VSOCK}. */
    private volatile ThreadSandbox sandbox;

    // Guarded by this.
    private final Map<Long, VsockConnection> connections = new HashMap<>();
    private final Set<VsockConnection> greeting = new HashSet<>();
    private final Set<Integer> localPortsInUse = new HashSet<>();
    private final LinkedHashSet<VsockConnection> ready = new LinkedHashSet<>();
    private final ArrayDeque<Long> resets = new ArrayDeque<>();
    private int nextLocalPort = FIRST_LOCAL_PORT;
    private boolean closed;
    /**
     * Sockets of removed connections, closed on the muxer's thread: closing a connected socket
     * calls getsockopt and shutdown, which the threads that remove connections may not (a vCPU
     * resetting the device, under seccomp).
     */
    private final List<SocketChannel> toClose = new ArrayList<>();
    // The transmit thread's copy of a packet's payload.
    private final ByteBuffer fromGuestPayload = ByteBuffer.allocate(VsockHeader.MAX_PAYLOAD);

    /**
     * Binds {@code udsPath} and starts the muxer's thread.
     *
     * @param maxConnections at most this many connections at once ({@link #MAX_CONNECTIONS}, less in tests)
     * @param wakeGuestSide wakes the receive queue's thread: there is something for the guest
     * @throws IOException when the socket cannot be bound; {@link FileAlreadyExistsException} when
     *         something is at {@code udsPath} already
     */
    VsockMuxer(String name, long guestCid, Path udsPath, VsockCounts counts, int maxConnections, Runnable wakeGuestSide)
            throws IOException {
        this.name = name;
        this.maxConnections = maxConnections;
        this.guestCid = guestCid;
        this.udsPath = udsPath;
        this.counts = counts;
        this.wakeGuestSide = wakeGuestSide;
        if (Files.exists(udsPath, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            throw new FileAlreadyExistsException(udsPath.toString(), null,
                    "something is at the vsock socket path already (a VM still running, or one that did not clean up): remove it or choose another path");
        }
        Selector s = Selector.open();
        ServerSocketChannel l = null;
        try {
            l = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            l.bind(UnixDomainSocketAddress.of(udsPath));
            l.configureBlocking(false);
            l.register(s, SelectionKey.OP_ACCEPT);
        } catch (IOException | RuntimeException e) {
            s.close();
            if (l != null) {
                boolean bound = l.getLocalAddress() != null;
                l.close();
                if (bound) {
                    Files.deleteIfExists(udsPath);
                }
            }
            throw e;
        }
        this.selector = s;
        this.listener = l;
        this.thread = Thread.ofPlatform().daemon().name(name.replaceAll("[^A-Za-z0-9]+", "-").replaceAll("^-|-$", "") + "-host")
                .start(this::run);
    }

    Path udsPath() {
        return udsPath;
    }

    /** Connections in the table or still sending their CONNECT line. */
    synchronized int connectionCount() {
        return connections.size() + greeting.size();
    }

    // ---- The muxer's thread ----

    /**
     * Has the muxer's thread confine itself to {@link SyscallProfile#VSOCK} when {@code sandbox} is
     * on: it started with the device, before the VM decided; it installs the filter at its next turn.
     */
    void confine(ThreadSandbox sandbox) {
        this.sandbox = sandbox;
        selector.wakeup();
    }

    private void run() {
        boolean confined = false;
        try {
            while (!stopping) {
                ThreadSandbox s = sandbox;
                if (s != null && !confined) {
                    s.confineCurrentThread(SyscallProfile.VSOCK);
                    confined = true;
                }
                long timeoutMillis = timeoutMillis();
                selector.select(timeoutMillis);
                synchronized (this) {
                    if (closed) {
                        return;
                    }
                    closeRemoved();
                    for (Iterator<SelectionKey> it = selector.selectedKeys().iterator(); it.hasNext();) {
                        SelectionKey key = it.next();
                        it.remove();
                        if (!key.isValid()) {
                            continue;
                        }
                        if (key.channel() == listener) {
                            acceptAll();
                        } else {
                            hostSocketReady((VsockConnection) key.attachment(), key.readyOps());
                        }
                    }
                    expire(System.nanoTime());
                }
            }
        } catch (ClosedSelectorException e) {
            // closed under us: the device is closing
        } catch (IOException | RuntimeException e) {
            if (!stopping) {
                LOG.log(Level.ERROR, name + ": the host side stopped: no more host connections will be served", e);
            }
        }
    }

    /** Until the nearest deadline, or 0 (no limit). */
    private synchronized long timeoutMillis() {
        long now = System.nanoTime();
        long nearest = Long.MAX_VALUE;
        for (VsockConnection c : greeting) {
            nearest = Math.min(nearest, c.deadline - now);
        }
        for (VsockConnection c : connections.values()) {
            if (c.state == VsockConnection.State.LOCAL_INIT) {
                nearest = Math.min(nearest, c.deadline - now);
            }
        }
        return nearest == Long.MAX_VALUE ? 0 : Math.max(1, TimeUnit.NANOSECONDS.toMillis(nearest) + 1);
    }

    /** Takes every waiting host connection; a failed accept (out of descriptors) is logged and the others go on. */
    private void acceptAll() {
        while (true) {
            SocketChannel channel;
            try {
                channel = listener.accept();
            } catch (IOException e) {
                LOG.log(Level.WARNING, () -> name + ": cannot accept a host program's connection: " + e.getMessage());
                return;
            }
            if (channel == null) {
                return;
            }
            VsockConnection c = new VsockConnection(channel, VsockConnection.State.AWAIT_CONNECT_LINE, true);
            if (connectionCount() >= maxConnections) {
                counts.countRefused();
                LOG.log(Level.WARNING, () -> name + ": a host program's connection is refused: " + maxConnections
                        + " vsock connections are open, the most a device takes");
                closeQuietly(c);
                continue;
            }
            try {
                channel.configureBlocking(false);
                c.key = channel.register(selector, SelectionKey.OP_READ, c);
            } catch (IOException e) {
                closeQuietly(c);
                continue;
            }
            c.deadline = System.nanoTime() + TIMEOUT_NANOS;
            greeting.add(c);
        }
    }

    private void hostSocketReady(VsockConnection c, int readyOps) {
        if (c.state == VsockConnection.State.AWAIT_CONNECT_LINE) {
            readConnectLine(c);
            return;
        }
        if ((readyOps & SelectionKey.OP_WRITE) != 0) {
            flush(c);
            if (connections.get(c.key()) != c) {
                return;
            }
        }
        if ((readyOps & SelectionKey.OP_READ) != 0) {
            c.hostReadable = true;
            schedule(c);
        }
        updateInterest(c);
    }

    /** Reads the CONNECT line a byte at a time; on its newline asks the guest for the connection. */
    private void readConnectLine(VsockConnection c) {
        ByteBuffer one = ByteBuffer.allocate(1);
        try {
            while (true) {
                one.clear();
                int n = c.channel.read(one);
                if (n == 0) {
                    return;
                }
                if (n < 0) {
                    dropGreeting(c, "closed before its CONNECT line");
                    return;
                }
                char ch = (char) (one.get(0) & 0xff);
                if (ch == '\n') {
                    break;
                }
                c.connectLine.append(ch);
                if (c.connectLine.length() > MAX_CONNECT_LINE) {
                    dropGreeting(c, "sent a line longer than " + MAX_CONNECT_LINE + " bytes instead of CONNECT <port>");
                    return;
                }
            }
        } catch (IOException e) {
            dropGreeting(c, "failed: " + e.getMessage());
            return;
        }
        String line = c.connectLine.toString().strip();
        Integer port = parseConnect(line);
        if (port == null) {
            dropGreeting(c, "sent \"" + line + "\", not CONNECT <port> with a port from 0 to 4294967295");
            return;
        }
        greeting.remove(c);
        c.hostPort = allocateLocalPort();
        c.guestPort = port;
        c.state = VsockConnection.State.LOCAL_INIT;
        c.deadline = System.nanoTime() + TIMEOUT_NANOS;
        connections.put(c.key(), c);
        c.pendingControl |= VsockConnection.SEND_REQUEST;
        updateInterest(c);
        schedule(c);
    }

    /** The port of {@code CONNECT <port>} (as an int holding a u32), or null. */
    static Integer parseConnect(String line) {
        String[] words = line.split(" ", -1);
        if (words.length != 2 || !words[0].equals("CONNECT") || words[1].isEmpty() || words[1].length() > 10
                || !words[1].chars().allMatch(ch -> ch >= '0' && ch <= '9')) {
            return null;
        }
        long port = Long.parseLong(words[1]);
        return port > 0xffff_ffffL ? null : (int) port;
    }

    private void dropGreeting(VsockConnection c, String why) {
        LOG.log(Level.DEBUG, () -> name + ": a host program's connection " + why + "; closed");
        greeting.remove(c);
        closeQuietly(c);
    }

    private int allocateLocalPort() {
        while (localPortsInUse.contains(nextLocalPort)) {
            advanceLocalPort();
        }
        int port = nextLocalPort;
        localPortsInUse.add(port);
        advanceLocalPort();
        return port;
    }

    private void advanceLocalPort() {
        nextLocalPort++;
        if (nextLocalPort == 0) { // past 2^32-1: start again among the host's own ports
            nextLocalPort = FIRST_LOCAL_PORT;
        }
    }

    /** Gives up connections past their deadline: a silent host program, or a guest that never answered. */
    private void expire(long now) {
        for (VsockConnection c : List.copyOf(greeting)) {
            if (now - c.deadline >= 0) {
                dropGreeting(c, "sent no CONNECT line in time");
            }
        }
        for (VsockConnection c : List.copyOf(connections.values())) {
            if (c.state == VsockConnection.State.LOCAL_INIT && now - c.deadline >= 0) {
                LOG.log(Level.DEBUG, () -> name + ": " + c + ": the guest did not answer in time; reset");
                reset(c);
            }
        }
    }

    /** Writes what the host socket can take of the OK line and the guest's bytes; resets the connection if the socket is gone. */
    private void flush(VsockConnection c) {
        try {
            if (c.reply != null) {
                c.channel.write(c.reply);
                if (c.reply.hasRemaining()) {
                    return;
                }
                c.reply = null;
            }
            if (c.unsent != null && c.unsent.position() > 0) {
                c.unsent.flip();
                int n = c.channel.write(c.unsent);
                c.unsent.compact();
                c.forwarded += n;
                creditUpdateIfLow(c);
            }
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> name + ": " + c + ": the host program is gone (" + e.getMessage() + "); reset");
            reset(c);
            return;
        }
        afterGuestShutdown(c);
    }

    /**
     * Once everything the guest sent is out: half-closes the host socket after the guest's SHUTDOWN
     * SEND; ends the connection after a full SHUTDOWN, or once both sides have stopped sending.
     */
    private void afterGuestShutdown(VsockConnection c) {
        if (c.hasUnsent() || c.guestShutdown == 0) {
            return;
        }
        if (c.guestShutdown == VsockHeader.SHUTDOWN_BOTH || c.hostEnded && (c.guestShutdown & VsockHeader.SHUTDOWN_SEND) != 0) {
            reset(c); // as Firecracker and Linux: the side that receives a full shutdown answers RST
            return;
        }
        if ((c.guestShutdown & VsockHeader.SHUTDOWN_SEND) != 0 && !c.outputShut) {
            c.outputShut = true;
            try {
                c.channel.shutdownOutput();
            } catch (IOException e) {
                reset(c);
            }
        }
    }

    /** The host socket's interest: its data while the guest can take it, room while bytes wait for it. */
    private void updateInterest(VsockConnection c) {
        if (c.key == null || !c.key.isValid()) {
            return;
        }
        int ops = 0;
        if (c.state == VsockConnection.State.AWAIT_CONNECT_LINE
                || (!c.hostReadable && c.mayRead() && c.peerCredit() > 0)) {
            ops |= SelectionKey.OP_READ;
        }
        if (c.hasUnsent()) {
            ops |= SelectionKey.OP_WRITE;
        }
        if (c.key.interestOps() != ops) {
            c.key.interestOps(ops);
            selector.wakeup();
        }
    }

    /** Puts {@code c} in line for the receive queue if it has something for the guest, and wakes that queue's thread. */
    private void schedule(VsockConnection c) {
        if (c.hostReadable && c.mayRead() && c.peerCredit() == 0 && !c.creditRequested) {
            c.creditRequested = true;
            c.pendingControl |= VsockConnection.SEND_CREDIT_REQUEST;
        }
        if (c.hasWorkForGuest() && ready.add(c)) {
            wakeGuestSide.run();
        }
    }

    /** Ends {@code c}: RST to the guest (if it knew the connection), the host socket closed. */
    private void reset(VsockConnection c) {
        if (remove(c) && c.state != VsockConnection.State.AWAIT_CONNECT_LINE) {
            queueReset(c.hostPort, c.guestPort);
        }
    }

    /** Takes {@code c} out of every table and closes its socket; false when it was gone already. */
    private boolean remove(VsockConnection c) {
        if (connections.get(c.key()) != c) {
            return false;
        }
        connections.remove(c.key());
        ready.remove(c);
        if (c.hostInitiated) {
            localPortsInUse.remove(c.hostPort);
        }
        if (c.key != null) {
            c.key.cancel(); // no more readiness for it; the next select deregisters it
        }
        toClose.add(c.channel);
        selector.wakeup();
        return true;
    }

    /** Closes the sockets {@link #remove} took out of the tables. */
    private void closeRemoved() {
        for (SocketChannel channel : toClose) {
            try {
                channel.close();
            } catch (IOException e) {
                // closing: nothing to do about it
            }
        }
        toClose.clear();
    }

    private void queueReset(int hostPort, int guestPort) {
        if (resets.size() >= maxConnections) {
            counts.countRefused(); // the guest is not reading its RX queue; it learns of this reset no more
            return;
        }
        resets.add(VsockConnection.key(hostPort, guestPort));
        wakeGuestSide.run();
    }

    private static void closeQuietly(VsockConnection c) {
        try {
            c.channel.close();
        } catch (IOException e) {
            // closing: nothing to do about it
        }
    }

    // ---- Packets from the guest (the transmit queue's thread) ----

    /**
     * Acts on one packet from the guest, whose header {@code h} was checked ({@code verdict}); its
     * payload is read from {@code chain} after the header.
     */
    synchronized void fromGuest(VsockHeader h, VsockHeader.Verdict verdict, DescriptorChain chain) {
        if (closed) {
            return;
        }
        if (verdict == VsockHeader.Verdict.DROP) {
            counts.countDropped();
            return;
        }
        VsockConnection c = connections.get(VsockConnection.key(h.dstPort, h.srcPort));
        if (verdict == VsockHeader.Verdict.RESET) {
            counts.countReset();
            LOG.log(Level.DEBUG, () -> name + ": malformed packet from the guest (" + h.describe() + "); reset");
            resetFromGuest(c, h);
            return;
        }
        if (c == null) {
            if (h.op == VsockHeader.OP_REQUEST) {
                connectToHost(h);
            } else if (h.op != VsockHeader.OP_RST) {
                queueReset(h.dstPort, h.srcPort);
            }
            return;
        }
        c.peerBufAlloc = h.bufAlloc;
        c.peerForwarded = h.fwdCnt;
        switch (h.op) {
            case VsockHeader.OP_REQUEST -> {
                counts.countReset(); // a second request for a connection that exists
                reset(c);
            }
            case VsockHeader.OP_RESPONSE -> {
                if (c.state != VsockConnection.State.LOCAL_INIT) {
                    counts.countReset();
                    reset(c);
                    return;
                }
                c.state = VsockConnection.State.ESTABLISHED;
                c.reply = ByteBuffer.wrap(("OK " + Integer.toUnsignedString(c.hostPort) + "\n").getBytes(StandardCharsets.US_ASCII));
                flush(c);
            }
            case VsockHeader.OP_RST -> remove(c);
            case VsockHeader.OP_SHUTDOWN -> {
                if (c.state == VsockConnection.State.LOCAL_INIT) {
                    counts.countReset();
                    reset(c);
                    return;
                }
                c.guestShutdown |= h.flags & VsockHeader.SHUTDOWN_BOTH;
                afterGuestShutdown(c);
            }
            case VsockHeader.OP_RW -> receiveData(c, h, chain);
            case VsockHeader.OP_CREDIT_UPDATE -> c.creditRequested = false;
            case VsockHeader.OP_CREDIT_REQUEST -> c.pendingControl |= VsockConnection.SEND_CREDIT_UPDATE;
            default -> throw new IllegalStateException("op " + h.op + " passed the header check");
        }
        if (connections.get(c.key()) == c) {
            updateInterest(c);
            schedule(c);
        }
    }

    /** A malformed packet: its connection (if any) is reset, else an RST answers it (never an RST to an RST). */
    private void resetFromGuest(VsockConnection c, VsockHeader h) {
        if (c != null) {
            reset(c);
        } else if (h.op != VsockHeader.OP_RST) {
            queueReset(h.dstPort, h.srcPort);
        }
    }

    /** The guest's REQUEST to host port P: a connection to {@code <udsPath>_<P>}, or RST when nobody listens there. */
    private void connectToHost(VsockHeader h) {
        if (connectionCount() >= maxConnections) {
            counts.countRefused();
            LOG.log(Level.WARNING, () -> name + ": the guest's connection to host port " + Integer.toUnsignedString(h.dstPort)
                    + " is refused: " + maxConnections + " vsock connections are open, the most a device takes");
            queueReset(h.dstPort, h.srcPort);
            return;
        }
        Path target = Path.of(udsPath + "_" + Integer.toUnsignedString(h.dstPort));
        SocketChannel channel = null;
        try {
            channel = SocketChannel.open(StandardProtocolFamily.UNIX);
            channel.configureBlocking(false);
            // A Unix socket connects at once or not at all (EAGAIN: its backlog is full).
            if (!channel.connect(UnixDomainSocketAddress.of(target))) {
                throw new IOException("its backlog is full");
            }
        } catch (IOException | RuntimeException e) {
            LOG.log(Level.DEBUG, () -> name + ": the guest's connection to " + target + " failed (" + e.getMessage() + "); reset");
            if (channel != null) {
                try {
                    channel.close();
                } catch (IOException ignored) {
                    // already failing
                }
            }
            queueReset(h.dstPort, h.srcPort);
            return;
        }
        VsockConnection c = new VsockConnection(channel, VsockConnection.State.ESTABLISHED, false);
        c.hostPort = h.dstPort;
        c.guestPort = h.srcPort;
        c.peerBufAlloc = h.bufAlloc;
        c.peerForwarded = h.fwdCnt;
        c.pendingControl |= VsockConnection.SEND_RESPONSE;
        try {
            c.key = channel.register(selector, 0, c);
        } catch (IOException e) {
            closeQuietly(c);
            queueReset(h.dstPort, h.srcPort);
            return;
        }
        connections.put(c.key(), c);
        updateInterest(c);
        schedule(c);
    }

    /** Data from the guest: written to the host socket at once if it takes it, the rest kept; more than the credit resets. */
    private void receiveData(VsockConnection c, VsockHeader h, DescriptorChain chain) {
        if (c.state != VsockConnection.State.ESTABLISHED || (c.guestShutdown & VsockHeader.SHUTDOWN_SEND) != 0) {
            counts.countReset();
            reset(c);
            return;
        }
        int length = h.len; // checked: at most MAX_PAYLOAD, inside the chain
        if (c.held() + length > BUFFER_BYTES) {
            counts.countReset();
            LOG.log(Level.DEBUG, () -> name + ": " + c + ": the guest sent " + length + " bytes with " + (BUFFER_BYTES - c.held())
                    + " of credit left; reset");
            reset(c);
            return;
        }
        if (length == 0) {
            return;
        }
        fromGuestPayload.clear();
        chain.read(VsockHeader.BYTES, fromGuestPayload.array(), 0, length);
        fromGuestPayload.limit(length);
        c.received += length;
        counts.countFromGuest(length);
        try {
            if (!c.hasUnsent()) {
                c.forwarded += c.channel.write(fromGuestPayload);
            }
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> name + ": " + c + ": the host program is gone (" + e.getMessage() + "); reset");
            reset(c);
            return;
        }
        if (fromGuestPayload.hasRemaining()) {
            if (c.unsent == null) {
                c.unsent = ByteBuffer.allocate(BUFFER_BYTES);
            }
            c.unsent.put(fromGuestPayload); // fits: held() <= BUFFER_BYTES
        }
        creditUpdateIfLow(c);
    }

    /** Tells the guest of freed room once the credit it knows of runs low, so a sender waiting for credit goes on. */
    private void creditUpdateIfLow(VsockConnection c) {
        long knownFree = BUFFER_BYTES - Integer.toUnsignedLong(c.received - c.lastForwardedTold);
        if (c.forwarded != c.lastForwardedTold && knownFree < CREDIT_UPDATE_THRESHOLD) {
            c.pendingControl |= VsockConnection.SEND_CREDIT_UPDATE;
            schedule(c);
        }
    }

    // ---- Packets for the guest (the receive queue's thread) ----

    /** Whether {@link #nextForGuest} has something. */
    synchronized boolean hasWorkForGuest() {
        return !resets.isEmpty() || !ready.isEmpty();
    }

    /**
     * Fills {@code h} with the next packet for the guest and {@code payload} with its data (at most
     * {@code maxPayload} bytes, read from the host socket); returns false when there is none.
     * Connections take turns, a packet each.
     */
    synchronized boolean nextForGuest(VsockHeader h, ByteBuffer payload, int maxPayload) {
        if (closed) {
            return false;
        }
        Long reset = resets.poll();
        if (reset != null) {
            h.toGuest(guestCid, (int) (reset >>> 32), reset.intValue(), VsockHeader.OP_RST);
            return true;
        }
        while (!ready.isEmpty()) {
            VsockConnection c = ready.removeFirst();
            boolean produced = packetFor(c, h, payload, maxPayload);
            if (connections.get(c.key()) == c) {
                updateInterest(c);
                if (c.hasWorkForGuest()) {
                    ready.add(c); // at the end: the others' turn first
                }
            }
            if (produced) {
                return true;
            }
            reset = resets.poll(); // the connection failed on the way
            if (reset != null) {
                h.toGuest(guestCid, (int) (reset >>> 32), reset.intValue(), VsockHeader.OP_RST);
                return true;
            }
        }
        return false;
    }

    private boolean packetFor(VsockConnection c, VsockHeader h, ByteBuffer payload, int maxPayload) {
        int control = Integer.lowestOneBit(c.pendingControl);
        if (control != 0) {
            c.pendingControl &= ~control;
            int op = switch (control) {
                case VsockConnection.SEND_REQUEST -> VsockHeader.OP_REQUEST;
                case VsockConnection.SEND_RESPONSE -> VsockHeader.OP_RESPONSE;
                case VsockConnection.SEND_CREDIT_UPDATE -> VsockHeader.OP_CREDIT_UPDATE;
                default -> VsockHeader.OP_CREDIT_REQUEST;
            };
            h.toGuest(guestCid, c.hostPort, c.guestPort, op);
            withCredit(c, h);
            return true;
        }
        if (!(c.hostReadable && c.mayRead() && c.peerCredit() > 0)) {
            return false;
        }
        int room = (int) Math.min(Math.min(maxPayload, VsockHeader.MAX_PAYLOAD), c.peerCredit());
        payload.clear().limit(room);
        int n;
        try {
            n = c.channel.read(payload);
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> name + ": " + c + ": the host program is gone (" + e.getMessage() + "); reset");
            reset(c);
            return false;
        }
        if (n == 0) {
            c.hostReadable = false; // watched again
            return false;
        }
        if (n < 0) {
            // The host program sends no more: it closed, or half-closed and still reads (a question sent,
            // the answer awaited). The guest is told SHUTDOWN SEND; the connection ends when the guest
            // has stopped sending too (at once if it had), or on a write to a socket that is gone.
            c.hostReadable = false;
            c.hostEnded = true;
            h.toGuest(guestCid, c.hostPort, c.guestPort, VsockHeader.OP_SHUTDOWN);
            h.flags = VsockHeader.SHUTDOWN_SEND;
            withCredit(c, h);
            afterGuestShutdown(c); // an RST follows this packet when the guest had stopped sending already
            return true;
        }
        payload.flip();
        h.toGuest(guestCid, c.hostPort, c.guestPort, VsockHeader.OP_RW);
        h.len = n;
        c.sent += n;
        counts.countToGuest(n);
        withCredit(c, h);
        return true;
    }

    /** Every packet tells the guest this side's credit. */
    private static void withCredit(VsockConnection c, VsockHeader h) {
        h.bufAlloc = BUFFER_BYTES;
        h.fwdCnt = c.forwarded;
        c.lastForwardedTold = c.forwarded;
    }

    // ---- Reset and close ----

    /**
     * Host ports for host programs' connections go on from a random place in the upper half of
     * their range. For a restored device: the snapshot keeps no connections, so a fresh count would
     * hand out the ports of the snapshot's connections again, and a packet the guest still sends for
     * one of those (an RST answering a packet of before the snapshot) would end the new connection on
     * the same port. Of the 2^30 places, one that meets the few ports used before is improbable.
     */
    synchronized void moveLocalPorts() {
        nextLocalPort = FIRST_LOCAL_PORT + ThreadLocalRandom.current().nextInt(FIRST_LOCAL_PORT);
    }

    /** The driver reset the device or a snapshot replaces its state: the guest knows no connection any more. */
    synchronized void dropAll() {
        for (VsockConnection c : List.copyOf(connections.values())) {
            remove(c);
        }
        resets.clear();
        ready.clear();
    }

    /** Stops the thread, closes every socket and removes {@code udsPath}; idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            stopping = true;
            dropAll();
            for (VsockConnection c : new ArrayList<>(greeting)) {
                closeQuietly(c);
            }
            greeting.clear();
        }
        selector.wakeup();
        boolean interrupted = false;
        while (true) {
            try {
                thread.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        synchronized (this) {
            closeRemoved();
        }
        try {
            listener.close();
            selector.close();
            Files.deleteIfExists(udsPath);
        } catch (IOException e) {
            LOG.log(Level.WARNING, name + ": closing the host side: " + e.getMessage());
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
