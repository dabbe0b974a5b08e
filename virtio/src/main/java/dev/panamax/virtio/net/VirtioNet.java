package dev.panamax.virtio.net;

import dev.panamax.sys.SyscallProfile;
import dev.panamax.sys.EventFd;
import dev.panamax.sys.Poller;
import dev.panamax.virtio.DescriptorChain;
import dev.panamax.virtio.VirtQueue;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.virtio.ratelimit.RateLimiter;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.Objects;
import java.util.Set;
import java.util.function.BooleanSupplier;

/**
 * A virtio network device (VIRTIO 1.x, 5.1) over a {@link NetBackend}: one receive and one transmit
 * queue, the MAC address and link status in the configuration space, mergeable receive buffers, and
 * the checksum and segmentation offloads the backend honours (no others are offered). A control
 * queue serves one command, the driver's acknowledgement of a request to announce itself
 * ({@link #announce}, after a live migration); every other command is answered VIRTIO_NET_ERR.
 *
 * <p>Each queue has its own I/O thread (the control queue's sleeps on its notification until the
 * driver sends a command, as the core serves any queue). The transmit thread hands the backend each
 * frame where the guest put it (only the header is copied, to be checked); while the backend cannot
 * take more it waits for the backend's descriptor to turn writable. The receive thread waits for the backend's
 * descriptor and its queue's notifications together: it takes one frame from the backend at a time
 * and keeps it until the guest has buffers for it, leaving the rest in the backend (whose own queue
 * bounds them) rather than dropping them.
 * A frame the guest sent that is malformed, or asks for an offload not negotiated, is dropped and
 * counted in {@link #dropped()}, as is one for the guest that does not fit its buffers.
 *
 * <p>Each direction has a {@link RateLimiter} (1 operation and the frame's bytes per frame). A frame
 * from the guest the transmit limiter refuses stays on the ring and the transmit queue waits for the
 * tokens; a frame for the guest the receive limiter refuses stays in hand, and the receive thread
 * stops reading the backend until the tokens are back. No frame is dropped for a limit.
 */
public final class VirtioNet extends VirtioDevice {
    private static final System.Logger LOG = System.getLogger(VirtioNet.class.getName());
    public static final int DEVICE_TYPE = 1;
    public static final int DEFAULT_QUEUE_SIZE = 256;
    /** One receive queue, one transmit queue and, without VIRTIO_NET_F_MQ, the control queue after them. */
    public static final int QUEUE_COUNT = 3;
    static final int RX = 0;
    static final int TX = 1;
    static final int CTRL = 2;

    // Feature bit numbers.
    public static final int VIRTIO_NET_F_CSUM = 0;
    public static final int VIRTIO_NET_F_GUEST_CSUM = 1;
    public static final int VIRTIO_NET_F_MAC = 5;
    public static final int VIRTIO_NET_F_GUEST_TSO4 = 7;
    public static final int VIRTIO_NET_F_GUEST_TSO6 = 8;
    public static final int VIRTIO_NET_F_GUEST_ECN = 9;
    public static final int VIRTIO_NET_F_GUEST_UFO = 10;
    public static final int VIRTIO_NET_F_HOST_TSO4 = 11;
    public static final int VIRTIO_NET_F_HOST_TSO6 = 12;
    public static final int VIRTIO_NET_F_HOST_ECN = 13;
    public static final int VIRTIO_NET_F_HOST_UFO = 14;
    public static final int VIRTIO_NET_F_MRG_RXBUF = 15;
    public static final int VIRTIO_NET_F_STATUS = 16;
    public static final int VIRTIO_NET_F_CTRL_VQ = 17;
    public static final int VIRTIO_NET_F_GUEST_ANNOUNCE = 21;

    // struct virtio_net_config offsets.
    static final int CONFIG_MAC = 0;
    static final int CONFIG_STATUS = 6;
    static final int CONFIG_MAX_VIRTQUEUE_PAIRS = 8;
    static final int CONFIG_SIZE = 10;
    static final int VIRTIO_NET_S_LINK_UP = 1;
    static final int VIRTIO_NET_S_ANNOUNCE = 2;

    // Control queue: struct virtio_net_ctrl's header {u8 class; u8 command}, its answer (u8 ack), and the one command served.
    static final int CTRL_HEADER_BYTES = 2;
    static final int VIRTIO_NET_OK = 0;
    static final int VIRTIO_NET_ERR = 1;
    static final int VIRTIO_NET_CTRL_ANNOUNCE = 3;
    static final int VIRTIO_NET_CTRL_ANNOUNCE_ACK = 0;

    // Poller tokens.
    private static final int QUEUE = 0;
    private static final int BACKEND = 1;

    /** Replaced once by {@link #bindBackend} when the device was built {@link #unbound}. */
    private volatile NetBackend backend;
    private final MacAddress mac;
    private final RateLimiter receiveLimiter;
    private final NetCounts counts = new NetCounts();
    private final RateLimiter transmitLimiter;
    private final Poller receivePoller;
    private final Poller transmitPoller;
    // Freed by the GC, not by close(): an I/O thread may still be copying when another thread closes.
    private final Arena arena = Arena.ofAuto();

    // The receive thread's: the frame taken from the backend and not yet given to the guest.
    private final MemorySegment inbound = arena.allocate(NetBackend.RECEIVE_BUFFER_BYTES);
    private int inboundLength; // 0: none
    private boolean inboundAdmitted; // the receive limiter let it through
    private long inboundDelivered; // bytes of it already written into the guest's buffers
    private int buffersUsed; // chains it fills, their heads and lengths below (mergeable buffers)
    private int[] usedHeads = new int[0];
    private int[] usedLengths = new int[0];
    private boolean watchingBackend;
    private Set<NetOffload> receiveOffloads = Set.of();

    // The transmit thread's: a frame's header, copied so the guest cannot change it after the checks,
    // then the guest's buffers holding the frame, sent from where they are.
    private final MemorySegment outboundHeader = arena.allocate(NetBackend.HEADER_BYTES);
    private MemorySegment[] outbound = new MemorySegment[0];
    private Set<NetOffload> transmitOffloads = Set.of();
    private BooleanSupplier transmitting = () -> false;

    // The control thread's: a command's header, copied out of the guest's buffers.
    private final byte[] controlHeader = new byte[CTRL_HEADER_BYTES];
    /** The announce bit a snapshot gave, between {@link #checkIdentity} and {@link #afterStateApplied}. */
    private volatile boolean restoredAnnounce;

    /**
     * @param id        names the device in logs and thread names
     * @param backend   owned by the device from now on: {@link #close()} closes it
     * @param queueSize the maximum size of each queue, a power of two
     */
    public VirtioNet(String id, MacAddress mac, NetBackend backend, int queueSize) {
        this(id, mac, backend, queueSize, RateLimiter.unlimited(), RateLimiter.unlimited());
    }

    /**
     * @param receiveLimiter  limits the frames to the guest: while it refuses, the frame taken stays
     *                        in hand and the rest stay in the backend
     * @param transmitLimiter limits the frames from the guest: while it refuses, they stay on the ring
     */
    public VirtioNet(String id, MacAddress mac, NetBackend backend, int queueSize, RateLimiter receiveLimiter,
            RateLimiter transmitLimiter) {
        super("virtio-net (" + id + ")", DEVICE_TYPE, features(backend.offloads()), QUEUE_COUNT, queueSize, CONFIG_SIZE);
        this.backend = backend;
        this.mac = mac;
        this.receiveLimiter = Objects.requireNonNull(receiveLimiter, "receiveLimiter");
        this.transmitLimiter = Objects.requireNonNull(transmitLimiter, "transmitLimiter");
        // A queue waiting under the old limit looks again under the new one.
        receiveLimiter.onUpdate(() -> notifyEvent(RX).signal());
        transmitLimiter.onUpdate(() -> notifyEvent(TX).signal());
        System.arraycopy(mac.bytes(), 0, config, CONFIG_MAC, 6);
        config[CONFIG_STATUS] = VIRTIO_NET_S_LINK_UP;
        config[CONFIG_MAX_VIRTQUEUE_PAIRS] = 1;
        Poller receive = null;
        Poller transmit = null;
        try {
            receive = Poller.create(2);
            transmit = Poller.create(2);
            receive.add(notifyEvent(RX), Poller.READABLE, QUEUE);
            transmit.add(notifyEvent(TX), Poller.READABLE, QUEUE);
        } catch (RuntimeException e) {
            if (receive != null) receive.close();
            if (transmit != null) transmit.close();
            super.close();
            throw e;
        }
        receivePoller = receive;
        transmitPoller = transmit;
    }

    /**
     * A device whose host end is opened later, by {@link #bindBackend}, and which must not run
     * before: a migration's destination builds its VM while the source still holds the tap. It
     * offers no offloads until then.
     *
     * @param kind the backend's kind, as {@link NetBackend#kind} names it ({@code tap}, {@code passt})
     */
    public static VirtioNet unbound(String id, MacAddress mac, String kind, int queueSize, RateLimiter receiveLimiter,
            RateLimiter transmitLimiter) {
        return new VirtioNet(id, mac, new UnboundBackend(kind), queueSize, receiveLimiter, transmitLimiter);
    }

    /**
     * Puts {@code real} under a device made {@link #unbound}, before its driver begins (a restore
     * puts the driver's state in after this): the device then offers the offloads {@code real}
     * honours, as if built on it.
     *
     * @param real owned by the device from now on, also when this throws
     * @throws IllegalStateException when the device has its backend already, or {@code real} is of another kind
     */
    public synchronized void bindBackend(NetBackend real) {
        try {
            if (!(backend instanceof UnboundBackend unbound)) {
                throw new IllegalStateException(name() + " has its backend already");
            }
            if (!real.kind().equals(unbound.kind())) {
                throw new IllegalStateException(name() + " was built for a " + unbound.kind() + " backend, not " + real.kind());
            }
            offerFeatures(features(real.offloads()));
        } catch (RuntimeException e) {
            real.close();
            throw e;
        }
        backend = real;
    }

    /** The device's feature bit and the driver's for each offload: {@code [offload] = {host, guest}}. */
    private static final int[][] OFFLOAD_FEATURES = new int[NetOffload.values().length][];

    static {
        OFFLOAD_FEATURES[NetOffload.CHECKSUM.ordinal()] = new int[] {VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM};
        OFFLOAD_FEATURES[NetOffload.TSO4.ordinal()] = new int[] {VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_GUEST_TSO4};
        OFFLOAD_FEATURES[NetOffload.TSO6.ordinal()] = new int[] {VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_GUEST_TSO6};
        OFFLOAD_FEATURES[NetOffload.TSO_ECN.ordinal()] = new int[] {VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_GUEST_ECN};
        OFFLOAD_FEATURES[NetOffload.UFO.ordinal()] = new int[] {VIRTIO_NET_F_HOST_UFO, VIRTIO_NET_F_GUEST_UFO};
    }

    /** MAC, STATUS, MRG_RXBUF, CTRL_VQ, GUEST_ANNOUNCE, and both directions of each offload the backend honours. */
    static long features(Set<NetOffload> offloads) {
        long features = 1L << VIRTIO_NET_F_MAC | 1L << VIRTIO_NET_F_STATUS | 1L << VIRTIO_NET_F_MRG_RXBUF | 1L << VIRTIO_NET_F_CTRL_VQ
                | 1L << VIRTIO_NET_F_GUEST_ANNOUNCE;
        for (NetOffload o : consistent(offloads)) {
            features |= 1L << OFFLOAD_FEATURES[o.ordinal()][0] | 1L << OFFLOAD_FEATURES[o.ordinal()][1];
        }
        return features;
    }

    /** The offloads the driver accepted for one direction (0: frames it sends, 1: frames it receives). */
    private Set<NetOffload> negotiatedOffloads(int direction) {
        Set<NetOffload> offloads = EnumSet.noneOf(NetOffload.class);
        for (NetOffload o : NetOffload.values()) {
            if (negotiated(OFFLOAD_FEATURES[o.ordinal()][direction])) offloads.add(o);
        }
        return consistent(offloads);
    }

    /**
     * {@code offloads} without those missing what they need: segmentation needs checksum offload,
     * ECN needs TCP segmentation (the specification's feature dependencies, 5.1.3.1).
     */
    private static Set<NetOffload> consistent(Set<NetOffload> offloads) {
        Set<NetOffload> result = offloads.isEmpty() ? EnumSet.noneOf(NetOffload.class) : EnumSet.copyOf(offloads);
        if (!result.contains(NetOffload.CHECKSUM)) {
            result.clear();
        }
        if (!result.contains(NetOffload.TSO4) && !result.contains(NetOffload.TSO6)) {
            result.remove(NetOffload.TSO_ECN);
        }
        return result;
    }

    /**
     * Tells the network where the guest is now, after a live migration moved it here: one RARP
     * frame from the guest's MAC address to everyone, as QEMU's self-announce sends, so that a
     * bridge or switch learns the new port at once rather than at the guest's next frame. Sent
     * before the guest runs again, while no frame of the guest's can be under way on the backend;
     * a backend that cannot take it now drops it (the guest's next frame teaches the same).
     *
     * <p>A running driver that accepted VIRTIO_NET_F_GUEST_ANNOUNCE (with the control queue it
     * needs) is asked to announce itself too: VIRTIO_NET_S_ANNOUNCE in the status field and a
     * configuration interrupt. The guest then sends what only it knows of, its IPv4 and IPv6
     * addresses and VLANs (Linux: gratuitous ARP and unsolicited neighbour advertisements), once
     * it runs, and acknowledges on the control queue, which clears the bit.
     */
    public void announce() {
        sendRarp();
        if (guestAnnounces() && (status() & (DRIVER_OK | DEVICE_NEEDS_RESET)) == DRIVER_OK) {
            synchronized (config) {
                config[CONFIG_STATUS] |= VIRTIO_NET_S_ANNOUNCE;
            }
            configChanged();
        }
    }

    /** Whether the driver accepted VIRTIO_NET_F_GUEST_ANNOUNCE and the control queue its acknowledgement comes on. */
    private boolean guestAnnounces() {
        return negotiated(VIRTIO_NET_F_GUEST_ANNOUNCE) && negotiated(VIRTIO_NET_F_CTRL_VQ);
    }

    /** Whether the guest was asked to announce itself and has not acknowledged it yet (VIRTIO_NET_S_ANNOUNCE). */
    public boolean announcePending() {
        return (readConfig(CONFIG_STATUS, 1) & VIRTIO_NET_S_ANNOUNCE) != 0;
    }

    private void clearAnnounce() {
        synchronized (config) {
            config[CONFIG_STATUS] &= ~VIRTIO_NET_S_ANNOUNCE;
        }
    }

    private void sendRarp() {
        ByteBuffer frame = ByteBuffer.allocate(60); // the minimum Ethernet frame, zero-padded
        byte[] address = mac.bytes();
        frame.put(new byte[] {-1, -1, -1, -1, -1, -1}).put(address).putShort((short) 0x8035); // broadcast, from the guest, RARP
        frame.putShort((short) 1).putShort((short) 0x0800).put((byte) 6).put((byte) 4).putShort((short) 3); // Ethernet/IPv4, reverse request
        frame.put(address).putInt(0).put(address).putInt(0);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment header = arena.allocate(NetBackend.HEADER_BYTES); // zeroed: no offload
            MemorySegment bytes = arena.allocate(frame.capacity());
            MemorySegment.copy(frame.array(), 0, bytes, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, frame.capacity());
            if (backend.send(new MemorySegment[] {header, bytes}, 2)) {
                counts.countTransmitted(frame.capacity());
            }
        }
    }

    /** The guest's address on this NIC. */
    public MacAddress mac() {
        return mac;
    }

    /** Whether the configuration space tells the driver the link is up. */
    public boolean linkUp() {
        return (readConfig(CONFIG_STATUS, 1) & VIRTIO_NET_S_LINK_UP) != 0;
    }

    /**
     * The MAC, the link status and the backend's kind and name, then the device's state: whether
     * an announcement is pending. A restore checks the MAC, the link and the kind; not the
     * backend's name, which a restore may change on purpose (a clone on its own tap) or cannot keep
     * (the socket of a passt started for the NIC).
     */
    @Override
    protected void saveIdentity(StateWriter out) {
        out.bytes(mac().bytes()).bool(linkUp()).string(backend.kind()).string(backend.name());
        out.bool(announcePending());
    }

    @Override
    protected void checkIdentity(StateReader in) {
        byte[] savedMac = in.bytesOfSize(6, "MAC address");
        if (!Arrays.equals(savedMac, mac.bytes())) {
            throw in.fail("the snapshot's " + name() + " has MAC address " + HexFormat.ofDelimiter(":").formatHex(savedMac)
                    + ", and this VM's has " + mac);
        }
        boolean savedLink = in.bool("link up");
        if (savedLink != linkUp()) {
            throw in.fail("the snapshot's " + name() + " has its link " + (savedLink ? "up" : "down") + ", and this VM's has it "
                    + (linkUp() ? "up" : "down"));
        }
        String savedKind = in.string(64, "backend kind");
        if (!savedKind.equals(backend.kind())) {
            throw in.fail("the snapshot's " + name() + " is on a " + savedKind + " backend, and this VM's is on " + backend.kind());
        }
        in.string(4096, "backend name"); // informative: see saveIdentity
        if (in.remaining() == 0) {
            throw in.fail("the snapshot's " + name() + " has no announce bit after its identity: it was saved by a Panamax whose"
                    + " virtio-net had no control queue, and this one cannot restore it");
        }
        restoredAnnounce = in.bool("announce pending");
    }

    /** Only a driver that accepted GUEST_ANNOUNCE with the control queue can have an announcement pending: another would never clear it. */
    @Override
    protected void checkDeviceState(StateReader in, long acceptedFeatures, int status) {
        long announcing = 1L << VIRTIO_NET_F_GUEST_ANNOUNCE | 1L << VIRTIO_NET_F_CTRL_VQ;
        if (restoredAnnounce && ((status & FEATURES_OK) == 0 || (acceptedFeatures & announcing) != announcing)) {
            throw in.fail(String.format("the snapshot's %s has an announcement pending (VIRTIO_NET_S_ANNOUNCE), and its driver did not"
                    + " accept VIRTIO_NET_F_GUEST_ANNOUNCE with VIRTIO_NET_F_CTRL_VQ (features 0x%x, status 0x%02x)", name(),
                    acceptedFeatures, status));
        }
    }

    /** The snapshot's announce bit; no interrupt, as the driver that was told of it runs on. */
    @Override
    protected void afterStateApplied(int status) {
        if (restoredAnnounce) {
            synchronized (config) {
                config[CONFIG_STATUS] |= VIRTIO_NET_S_ANNOUNCE;
            }
        }
        restoredAnnounce = false;
    }

    /** The new driver knows of no announcement. */
    @Override
    protected void afterReset() {
        clearAnnounce();
    }

    /** Frames and bytes moved each way. */
    public NetCounts counts() {
        return counts;
    }

    /** Frames dropped each way: by the backend, and by this device for the guest's buffers. */
    public DropCounts dropped() {
        return backend.dropped();
    }

    /** Limits the frames to the guest (bytes: each frame without its virtio-net header). */
    public RateLimiter receiveLimiter() {
        return receiveLimiter;
    }

    /** Limits the frames from the guest (bytes: each frame without its virtio-net header). */
    public RateLimiter transmitLimiter() {
        return transmitLimiter;
    }

    @Override
    protected RateLimiter rateLimiter(VirtQueue queue) {
        return queue.index() == TX ? transmitLimiter : null; // the receive loop asks its own
    }

    @Override
    protected long requestBytes(VirtQueue queue, DescriptorChain chain) {
        return Math.max(0, chain.readableLength() - NetBackend.HEADER_BYTES);
    }

    @Override
    protected void serve(VirtQueue queue, BooleanSupplier running) {
        try {
            if (queue.index() == RX) {
                receive(queue, running);
            } else if (queue.index() == CTRL) {
                super.serve(queue, running);
            } else {
                transmitOffloads = negotiatedOffloads(0);
                if (outbound.length < queue.size() + 1) { // the header and at most every descriptor
                    outbound = new MemorySegment[queue.size() + 1];
                    outbound[0] = outboundHeader;
                }
                // A frame in hand is sent even while the device quiesces; only a reset or a failure gives it up.
                transmitting = () -> !abandoning(queue);
                super.serve(queue, running);
            }
        } catch (NetBackendException e) {
            fail(e.getMessage());
        }
    }

    @Override
    protected int handle(VirtQueue queue, DescriptorChain chain) {
        return queue.index() == CTRL ? control(chain) : transmit(chain);
    }

    // ---- Control: the base class's loop, each chain one command ----

    /**
     * Answers one command in the chain's first writable byte; the used length is 1. A chain without
     * the 2-byte header or the byte for the answer is malformed (the device needs a reset, as
     * QEMU's does); a command this device does not serve, or whose feature the driver did not
     * accept, is answered VIRTIO_NET_ERR. Command data after the header is not read.
     */
    private int control(DescriptorChain chain) {
        if (chain.readableLength() < CTRL_HEADER_BYTES) {
            throw new VirtioProtocolException("queue " + CTRL + ": command at descriptor " + chain.head() + " has a header of "
                    + chain.readableLength() + " readable bytes, not " + CTRL_HEADER_BYTES);
        }
        if (chain.writableLength() == 0) {
            throw new VirtioProtocolException("queue " + CTRL + ": command at descriptor " + chain.head() + " has no writable byte for its answer");
        }
        chain.read(0, controlHeader, 0, CTRL_HEADER_BYTES);
        int commandClass = controlHeader[0] & 0xff;
        int command = controlHeader[1] & 0xff;
        int ack = VIRTIO_NET_ERR;
        if (commandClass == VIRTIO_NET_CTRL_ANNOUNCE && command == VIRTIO_NET_CTRL_ANNOUNCE_ACK && guestAnnounces()) {
            if (announcePending()) {
                LOG.log(System.Logger.Level.INFO, name() + ": the guest announced itself on the network (it acknowledged VIRTIO_NET_S_ANNOUNCE)");
            }
            clearAnnounce(); // also when none was pending: the bit is clear as the driver wants it
            ack = VIRTIO_NET_OK;
        }
        controlHeader[0] = (byte) ack;
        chain.write(0, controlHeader, 0, 1);
        return 1;
    }

    // ---- Transmit: the base class's loop, each chain one frame ----

    /** Sends the frame of one chain; waits while the backend cannot take it. The used length is 0: nothing is written. */
    private int transmit(DescriptorChain chain) {
        long frameBytes = chain.readableLength() - NetBackend.HEADER_BYTES;
        if (frameBytes < VirtioNetHeader.MIN_FRAME_BYTES || frameBytes > VirtioNetHeader.MAX_FRAME_BYTES
                || chain.count() >= NetBackend.MAX_PARTS) { // with the header copy, more parts than a backend takes
            backend.dropped().countFromGuest();
            return 0;
        }
        chain.read(0, outboundHeader, 0, NetBackend.HEADER_BYTES);
        if (!VirtioNetHeader.acceptableFromGuest(outboundHeader, frameBytes, transmitOffloads)) {
            backend.dropped().countFromGuest(); // an offload the driver did not negotiate, or a malformed header
            return 0;
        }
        int count = 1 + chain.readableParts(NetBackend.HEADER_BYTES, outbound, 1);
        boolean sent = backend.send(outbound, count);
        if (!sent) {
            transmitPoller.add(backend.descriptor(), Poller.WRITABLE, BACKEND);
            try {
                do {
                    awaitAndClearNotification(transmitPoller, notifyEvent(TX), -1);
                } while (transmitting.getAsBoolean() && !(sent = backend.send(outbound, count)));
            } finally {
                transmitPoller.remove(backend.descriptor());
            }
        }
        if (sent) {
            counts.countTransmitted(frameBytes);
        }
        return 0;
    }

    // ---- Receive ----

    private void receive(VirtQueue queue, BooleanSupplier running) {
        receiveOffloads = negotiatedOffloads(1);
        backend.setReceiveOffloads(receiveOffloads);
        boolean mergeable = negotiated(VIRTIO_NET_F_MRG_RXBUF);
        DescriptorChain first = queue.newChain();
        DescriptorChain more = mergeable ? queue.newChain() : null;
        if (usedHeads.length < queue.size()) {
            usedHeads = new int[queue.size()];
            usedLengths = new int[queue.size()];
        }
        // A frame kept over a reset starts again in the new ring's buffers, if the new driver takes it.
        inboundDelivered = 0;
        buffersUsed = 0;
        if (inboundLength > 0 && !acceptableForGuest(inbound)) {
            dropInbound();
        }
        while (running.getAsBoolean()) {
            if (inboundLength == 0 && !takeFromBackend()) {
                watchBackend(true);
                awaitAndClearNotification(receivePoller, notifyEvent(RX), -1);
                continue;
            }
            if (!inboundAdmitted) {
                long throttledNanos = receiveLimiter.tryConsume(inboundLength - NetBackend.HEADER_BYTES);
                if (throttledNanos > 0) {
                    // The frame stays in hand, the rest in the backend, unread until the tokens are back.
                    watchBackend(false);
                    awaitAndClearNotification(receivePoller, notifyEvent(RX), throttleMillis(throttledNanos));
                    continue;
                }
                inboundAdmitted = true;
            }
            if (mergeable ? deliverMerged(queue, first, more) : deliverWhole(queue, first)) {
                interruptIfWanted(queue);
                continue;
            }
            // Out of buffers: the backend keeps what it holds until the driver adds some.
            if (!queue.armNotification()) {
                watchBackend(false);
                awaitAndClearNotification(receivePoller, notifyEvent(RX), -1);
            }
        }
        // Stopped (quiesced) in the middle of a frame: the chains it filled so far go back to the
        // ring, to be taken again, rather than be kept from the driver. The frame stays in hand.
        queue.unpop(buffersUsed);
        buffersUsed = 0;
        inboundDelivered = 0;
    }

    /** Takes the next frame the guest can accept from the backend; false when there is none now. */
    private boolean takeFromBackend() {
        while (true) {
            int length = backend.receive(inbound);
            if (length == 0) {
                return false;
            }
            inboundLength = length;
            if (acceptableForGuest(inbound)) {
                return true;
            }
            dropInbound();
        }
    }

    /**
     * Whether the frame's header asks only for offloads the driver accepted; a frame the backend
     * took before a reset to fewer offloads may not.
     */
    private boolean acceptableForGuest(MemorySegment packet) {
        boolean needsChecksum = (VirtioNetHeader.flags(packet) & VirtioNetHeader.VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0;
        return (!needsChecksum || receiveOffloads.contains(NetOffload.CHECKSUM))
                && VirtioNetHeader.segmentationAllowed(VirtioNetHeader.gsoType(packet), receiveOffloads);
    }

    private void dropInbound() {
        backend.dropped().countToGuest();
        inboundLength = 0;
        inboundAdmitted = false;
    }

    /** Without mergeable buffers: the frame into one chain, or dropped when it does not fit. False when the queue is empty. */
    private boolean deliverWhole(VirtQueue queue, DescriptorChain chain) {
        if (!queue.pop(chain)) {
            return false;
        }
        if (chain.writableLength() < inboundLength) {
            dropInbound(); // the driver's buffers are smaller than the frames it accepted
            queue.addUsed(chain.head(), 0);
            return true;
        }
        chain.write(0, inbound, 0, inboundLength);
        counts.countReceived(inboundLength - NetBackend.HEADER_BYTES); // before the guest can see it
        queue.addUsed(chain.head(), inboundLength);
        inboundLength = 0;
        inboundAdmitted = false;
        return true;
    }

    /**
     * With mergeable buffers: the frame across as many chains as it needs, {@code num_buffers} in the
     * first one's header, all used at once. False when the queue ran empty first; the chains filled so
     * far stay with the device, and the next call goes on from there.
     */
    private boolean deliverMerged(VirtQueue queue, DescriptorChain first, DescriptorChain more) {
        while (inboundDelivered < inboundLength) {
            DescriptorChain chain = buffersUsed == 0 ? first : more;
            if (buffersUsed == usedHeads.length) {
                // Every buffer of the queue holds part of the frame and it still does not fit: give them back empty.
                Arrays.fill(usedLengths, 0, buffersUsed, 0);
                queue.addUsed(usedHeads, usedLengths, buffersUsed);
                buffersUsed = 0;
                inboundDelivered = 0;
                dropInbound();
                return true;
            }
            if (!queue.pop(chain)) {
                return false;
            }
            if (buffersUsed == 0 && chain.writableLength() < NetBackend.HEADER_BYTES) {
                throw new VirtioProtocolException("queue " + RX + ": receive buffer at descriptor " + chain.head() + " has "
                        + chain.writableLength() + " writable bytes, less than the " + NetBackend.HEADER_BYTES + "-byte header");
            }
            int n = (int) Math.min(chain.writableLength(), inboundLength - inboundDelivered);
            chain.write(0, inbound, inboundDelivered, n);
            usedHeads[buffersUsed] = chain.head();
            usedLengths[buffersUsed] = n;
            buffersUsed++;
            inboundDelivered += n;
        }
        VirtioNetHeader.setNumBuffers(inbound, buffersUsed);
        first.write(VirtioNetHeader.NUM_BUFFERS, inbound, VirtioNetHeader.NUM_BUFFERS, 2);
        // All at once: a driver that saw the first buffer before the others would take the frame as cut short.
        counts.countReceived(inboundLength - NetBackend.HEADER_BYTES); // before the guest can see it
        queue.addUsed(usedHeads, usedLengths, buffersUsed);
        buffersUsed = 0;
        inboundDelivered = 0;
        inboundLength = 0;
        inboundAdmitted = false;
        return true;
    }

    /** Whether the receive poller reports the backend's readability: not while the guest has no buffers for it. */
    private void watchBackend(boolean watch) {
        if (watch != watchingBackend) {
            if (watch) {
                receivePoller.add(backend.descriptor(), Poller.READABLE, BACKEND);
            } else {
                receivePoller.remove(backend.descriptor());
            }
            watchingBackend = watch;
        }
    }

    /** Waits for anything {@code poller} watches, at most {@code timeoutMillis} (-1: no limit); takes the queue's notification, if that was it. */
    private static void awaitAndClearNotification(Poller poller, EventFd notify, int timeoutMillis) {
        int ready = poller.await(timeoutMillis);
        for (int i = 0; i < ready; i++) {
            if (poller.token(i) == QUEUE) {
                notify.read();
            }
        }
    }

    /** Stops the device, then closes the backend. */
    @Override
    public void close() {
        super.close();
        receivePoller.close();
        transmitPoller.close();
        backend.close();
    }

    @Override
    protected SyscallProfile ioThreadProfile() {
        return SyscallProfile.NET;
    }
}
