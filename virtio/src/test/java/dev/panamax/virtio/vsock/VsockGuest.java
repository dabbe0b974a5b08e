package dev.panamax.virtio.vsock;

import static dev.panamax.virtio.VirtioTestDriver.Buffer.readable;
import static dev.panamax.virtio.VirtioTestDriver.Buffer.writable;

import dev.panamax.virtio.VirtioTestDriver.Buffer;
import dev.panamax.virtio.VirtioTestDriver.Used;
import dev.panamax.virtio.VirtioTestDriver;
import java.io.ByteArrayOutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

/**
 * A guest's vsock driver and sockets in Java, on one thread (the test's): RX buffers handed to the
 * device and given back after each packet, TX slots reused once used, listeners that accept, RST
 * for SHUTDOWN as Linux answers, credit kept both ways. {@link #pumpUntil} runs it.
 */
final class VsockGuest {
    static final int QUEUE_SIZE = 128;
    static final int RX_BUFFERS = 64;
    static final int RX_BUFFER_BYTES = VsockHeader.BYTES + 4096;
    static final int TX_SLOTS = 32;
    static final int TX_PAYLOAD = 32 * 1024;
    static final int BUF_ALLOC = 256 * 1024;
    static final Duration TIMEOUT = Duration.ofSeconds(60);

    VirtioVsock device;
    VirtioTestDriver driver;
    final long cid;
    final Set<Integer> listening = new HashSet<>();
    /** Whether a connection the host opens echoes its bytes back from the first one. */
    boolean echoNewConnections;
    final Map<Long, Conn> connections = new HashMap<>();
    final List<VsockHeader> received = new ArrayList<>();
    final List<String> problems = new ArrayList<>();
    int transportResets;
    boolean answerShutdownWithRst = true;
    /** As a program that reads to the end of stream and closes: the host's SHUTDOWN SEND is answered with a full SHUTDOWN. */
    boolean closeAtEndOfStream = true;

    private final Map<Integer, Long> rxBuffers = new HashMap<>();
    private final long[] txHeaders = new long[TX_SLOTS];
    private final long[] txPayloads = new long[TX_SLOTS];
    private int txNext;
    private int txOutstanding;
    private final Map<Integer, Long> eventBuffers = new HashMap<>();

    /** One guest socket. */
    final class Conn {
        final int guestPort;
        final int hostPort;
        boolean established;
        boolean reset;
        int shutdownFlags;
        int hostBufAlloc;
        int hostFwdCnt;
        int txCnt;
        int fwdCnt;
        int lastFwdTold;
        long rxBytes;
        final MessageDigest rxDigest = sha256();
        boolean echo;
        final ByteArrayOutputStream toEcho = new ByteArrayOutputStream();

        Conn(int guestPort, int hostPort) {
            this.guestPort = guestPort;
            this.hostPort = hostPort;
        }

        long credit() {
            return Math.max(0, Integer.toUnsignedLong(hostBufAlloc) - Integer.toUnsignedLong(txCnt - hostFwdCnt));
        }
    }

    VsockGuest(VirtioVsock device, VirtioTestDriver driver) {
        this.device = device;
        this.driver = driver;
        this.cid = device.guestCid();
    }

    static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    static long key(int guestPort, int hostPort) {
        return (long) guestPort << 32 | Integer.toUnsignedLong(hostPort);
    }

    /** Goes on with {@code restored}, which restored the state of this guest's device; the guest's sockets stay until told. */
    void continueOn(VirtioVsock restored) {
        driver = driver.continuedOn(restored);
        device = restored;
    }

    /** Starts the driver, gives the device its RX and event buffers. */
    void start() {
        driver.start(QUEUE_SIZE);
        for (int i = 0; i < RX_BUFFERS; i++) {
            long address = driver.allocate(RX_BUFFER_BYTES);
            rxBuffers.put(driver.offer(VirtioVsock.RX, writable(address, RX_BUFFER_BYTES)), address);
        }
        driver.notify(VirtioVsock.RX);
        for (int i = 0; i < 4; i++) {
            long address = driver.allocate(4);
            eventBuffers.put(driver.offer(VirtioVsock.EVENT, writable(address, 4)), address);
        }
        driver.notify(VirtioVsock.EVENT);
        allocateTxSlots();
    }

    void allocateTxSlots() {
        for (int i = 0; i < TX_SLOTS; i++) {
            txHeaders[i] = driver.allocate(VsockHeader.BYTES);
            txPayloads[i] = driver.allocate(TX_PAYLOAD);
        }
    }

    /** Handles what the device used; true when there was something. */
    boolean pump() {
        boolean progress = false;
        Used used;
        boolean rxGiven = false;
        while ((used = driver.pollUsed(VirtioVsock.RX)) != null) {
            long address = rxBuffers.remove(used.id());
            handle(address, used.length());
            rxBuffers.put(driver.offer(VirtioVsock.RX, writable(address, RX_BUFFER_BYTES)), address);
            rxGiven = true;
            progress = true;
        }
        if (rxGiven) {
            driver.notify(VirtioVsock.RX);
        }
        while ((used = driver.pollUsed(VirtioVsock.TX)) != null) {
            txOutstanding--;
            progress = true;
        }
        while ((used = driver.pollUsed(VirtioVsock.EVENT)) != null) {
            int id = driver.memory().readInt(eventBuffers.get(used.id()));
            if (used.length() != 4 || id != VirtioVsock.VIRTIO_VSOCK_EVENT_TRANSPORT_RESET) {
                problems.add("event of " + used.length() + " bytes, id " + id);
            }
            transportResets++;
            progress = true;
        }
        for (Conn c : List.copyOf(connections.values())) {
            if (c.echo && c.toEcho.size() > 0 && c.credit() > 0 && !c.reset) {
                byte[] all = c.toEcho.toByteArray();
                int n = (int) Math.min(Math.min(c.credit(), TX_PAYLOAD), all.length);
                sendData(c, all, 0, n);
                c.toEcho.reset();
                c.toEcho.write(all, n, all.length - n);
                progress = true;
            }
        }
        return progress;
    }

    void pumpUntil(BooleanSupplier condition, String what) {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (!condition.getAsBoolean()) {
            if (!pump()) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("timed out waiting for " + what + "; device status 0x" + Integer.toHexString(device.status())
                            + ", failure " + device.failure() + ", counts " + device.counts());
                }
                LockSupport.parkNanos(20_000);
            }
        }
    }

    private void handle(long address, int length) {
        byte[] bytes = driver.read(address, VsockHeader.BYTES);
        VsockHeader h = new VsockHeader();
        h.decode(bytes);
        received.add(h);
        if (h.srcCid != VsockHeader.HOST_CID || h.dstCid != cid || h.type != VsockHeader.TYPE_STREAM
                || length != VsockHeader.BYTES + (h.op == VsockHeader.OP_RW ? h.len : 0)) {
            problems.add("bad packet from the device: " + h.describe() + " in " + length + " bytes");
        }
        Conn c = connections.get(key(h.dstPort, h.srcPort));
        if (c != null) {
            c.hostBufAlloc = h.bufAlloc;
            c.hostFwdCnt = h.fwdCnt;
        }
        switch (h.op) {
            case VsockHeader.OP_REQUEST -> {
                if (c != null) {
                    problems.add("a second request for " + h.describe());
                } else if (listening.contains(h.dstPort)) {
                    c = new Conn(h.dstPort, h.srcPort);
                    c.hostBufAlloc = h.bufAlloc;
                    c.hostFwdCnt = h.fwdCnt;
                    c.established = true;
                    c.echo = echoNewConnections;
                    connections.put(key(c.guestPort, c.hostPort), c);
                    control(c, VsockHeader.OP_RESPONSE, 0);
                } else {
                    control(new Conn(h.dstPort, h.srcPort), VsockHeader.OP_RST, 0);
                }
            }
            case VsockHeader.OP_RESPONSE -> {
                if (c == null) {
                    problems.add("response for no request: " + h.describe());
                } else {
                    c.established = true;
                }
            }
            case VsockHeader.OP_RST -> {
                if (c != null) {
                    c.reset = true;
                    connections.remove(key(c.guestPort, c.hostPort));
                }
            }
            case VsockHeader.OP_SHUTDOWN -> {
                if (c != null) {
                    c.shutdownFlags |= h.flags;
                    if (answerShutdownWithRst && c.shutdownFlags == VsockHeader.SHUTDOWN_BOTH) {
                        control(c, VsockHeader.OP_RST, 0);
                        c.reset = true;
                        connections.remove(key(c.guestPort, c.hostPort));
                    } else if (closeAtEndOfStream && (h.flags & VsockHeader.SHUTDOWN_SEND) != 0) {
                        control(c, VsockHeader.OP_SHUTDOWN, VsockHeader.SHUTDOWN_BOTH);
                    }
                }
            }
            case VsockHeader.OP_RW -> {
                if (c == null || !c.established) {
                    problems.add("data for no connection: " + h.describe());
                    return;
                }
                byte[] data = driver.read(address + VsockHeader.BYTES, h.len);
                c.rxDigest.update(data);
                c.rxBytes += data.length;
                c.fwdCnt += data.length;
                if (Integer.toUnsignedLong(c.fwdCnt - c.lastFwdTold) > BUF_ALLOC / 4) {
                    control(c, VsockHeader.OP_CREDIT_UPDATE, 0);
                }
                if (c.echo) {
                    c.toEcho.writeBytes(data);
                }
            }
            case VsockHeader.OP_CREDIT_UPDATE -> { }
            case VsockHeader.OP_CREDIT_REQUEST -> {
                if (c != null) {
                    control(c, VsockHeader.OP_CREDIT_UPDATE, 0);
                }
            }
            default -> problems.add("unknown op from the device: " + h.describe());
        }
    }

    /** A header from this guest for {@code c}, with its credit. */
    VsockHeader header(Conn c, int op) {
        VsockHeader h = new VsockHeader();
        h.srcCid = cid;
        h.dstCid = VsockHeader.HOST_CID;
        h.srcPort = c.guestPort;
        h.dstPort = c.hostPort;
        h.type = VsockHeader.TYPE_STREAM;
        h.op = op;
        h.bufAlloc = BUF_ALLOC;
        h.fwdCnt = c.fwdCnt;
        c.lastFwdTold = c.fwdCnt;
        return h;
    }

    void control(Conn c, int op, int flags) {
        VsockHeader h = header(c, op);
        h.flags = flags;
        send(h, new byte[0], 0, 0);
    }

    void sendData(Conn c, byte[] data, int offset, int length) {
        VsockHeader h = header(c, VsockHeader.OP_RW);
        h.len = length;
        c.txCnt += length;
        send(h, data, offset, length);
    }

    /** Sends {@code h} and {@code length} bytes of payload, header and payload in separate descriptors (as Linux does). */
    void send(VsockHeader h, byte[] data, int offset, int length) {
        byte[] bytes = new byte[VsockHeader.BYTES];
        h.encode(bytes);
        int slot = takeTxSlot();
        driver.memory().write(txHeaders[slot], bytes);
        if (length == 0) {
            driver.submit(VirtioVsock.TX, readable(txHeaders[slot], VsockHeader.BYTES));
        } else {
            driver.memory().write(txPayloads[slot], data, offset, length);
            driver.submit(VirtioVsock.TX, readable(txHeaders[slot], VsockHeader.BYTES), readable(txPayloads[slot], length));
        }
    }

    /** Submits a chain over raw bytes, for malformed packets. */
    void sendRaw(Buffer... buffers) {
        takeTxSlot();
        driver.submit(VirtioVsock.TX, buffers);
    }

    /** Whether the device has taken every packet sent (their chains are back in the used ring). */
    boolean txIdle() {
        while (txOutstanding > 0 && driver.pollUsed(VirtioVsock.TX) != null) {
            txOutstanding--;
        }
        return txOutstanding == 0;
    }

    private int takeTxSlot() {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (txOutstanding == TX_SLOTS) {
            if (driver.pollUsed(VirtioVsock.TX) != null) {
                txOutstanding--;
            } else if (System.nanoTime() > deadline) {
                throw new AssertionError("the device took no TX chain for " + TIMEOUT);
            } else {
                LockSupport.parkNanos(20_000);
            }
        }
        txOutstanding++;
        int slot = txNext;
        txNext = (txNext + 1) % TX_SLOTS;
        return slot;
    }

    /** All TX chains used. */
    void awaitTxDone() {
        pumpUntil(() -> txOutstanding == 0, "the device to take every TX chain");
    }

    /** Connects to host port {@code hostPort} from guest port {@code guestPort}; returns once answered (RESPONSE or RST). */
    Conn connect(int guestPort, int hostPort) {
        Conn c = new Conn(guestPort, hostPort);
        connections.put(key(guestPort, hostPort), c);
        control(c, VsockHeader.OP_REQUEST, 0);
        pumpUntil(() -> c.established || c.reset, "an answer to the connection request to host port " + hostPort);
        return c;
    }

    /** Writes all of {@code data}, as credit allows. */
    void write(Conn c, byte[] data) {
        int offset = 0;
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (offset < data.length) {
            if (c.reset) {
                throw new AssertionError("connection reset while writing");
            }
            long credit = c.credit();
            if (credit == 0) {
                if (!pump()) {
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("no credit from the device for " + TIMEOUT);
                    }
                    LockSupport.parkNanos(20_000);
                }
                continue;
            }
            int n = (int) Math.min(Math.min(credit, TX_PAYLOAD), data.length - offset);
            sendData(c, data, offset, n);
            offset += n;
            pump();
        }
    }

    /** The connection a host program opened to guest port {@code guestPort}, once it exists. */
    Conn awaitIncoming(int guestPort) {
        Conn[] found = new Conn[1];
        pumpUntil(() -> {
            for (Conn c : connections.values()) {
                if (c.guestPort == guestPort && c.established) {
                    found[0] = c;
                    return true;
                }
            }
            return false;
        }, "a connection to guest port " + guestPort);
        return found[0];
    }
}
