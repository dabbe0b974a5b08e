package dev.panamax.virtio.net;

import dev.panamax.sys.Fd;
import dev.panamax.sys.NativeCallException;
import dev.panamax.sys.NativeIoException;
import dev.panamax.sys.Tap;
import java.lang.foreign.MemorySegment;
import java.util.Collections;
import java.util.EnumSet;
import java.util.Set;

/**
 * A NIC on a host TAP device. The tap carries the virtio-net header itself ({@code IFF_VNET_HDR}),
 * so frames pass through unchanged and the kernel honours every offload its tap driver supports.
 */
public final class TapBackend implements NetBackend {
    private final Tap tap;
    private final Set<NetOffload> offloads;
    private final DropCounts dropped = new DropCounts();

    private TapBackend(Tap tap) {
        this.tap = tap;
        Set<NetOffload> supported = EnumSet.noneOf(NetOffload.class);
        for (Tap.Offload o : tap.supportedOffloads()) supported.add(toNet(o));
        this.offloads = Collections.unmodifiableSet(supported);
    }

    /**
     * Creates the tap {@code name}, or attaches to an existing one.
     *
     * @throws NetBackendException with what went wrong and what to do
     */
    public static TapBackend open(String name) {
        try {
            return new TapBackend(Tap.open(name, HEADER_BYTES));
        } catch (IllegalArgumentException | NativeCallException e) {
            throw new NetBackendException("cannot open tap " + name + ": " + e.getMessage(), e);
        }
    }

    /**
     * Takes over an open tap descriptor (inherited from the program that started Panamax), attached
     * with {@code IFF_TAP | IFF_NO_PI | IFF_VNET_HDR}.
     *
     * @throws NetBackendException when {@code fd} is not such a tap
     */
    public static TapBackend adopt(int fd) {
        try {
            return new TapBackend(Tap.adopt(fd, HEADER_BYTES));
        } catch (IllegalArgumentException | NativeCallException e) {
            throw new NetBackendException("cannot use tap fd " + fd + ": " + e.getMessage(), e);
        }
    }

    /** The tap interface's name on the host. */
    public String tapName() {
        return tap.name();
    }

    @Override
    public Set<NetOffload> offloads() {
        return offloads;
    }

    @Override
    public void setReceiveOffloads(Set<NetOffload> receive) {
        if (!offloads.containsAll(receive)) {
            throw new IllegalArgumentException("tap " + tap.name() + " offers offloads " + offloads + ", not " + receive);
        }
        Set<Tap.Offload> flags = EnumSet.noneOf(Tap.Offload.class);
        for (NetOffload o : receive) flags.add(toTap(o));
        tap.setOffloads(flags);
    }

    @Override
    public boolean send(MemorySegment[] packet, int count) {
        if (!VirtioNetHeader.acceptableFromGuest(packet[0], VirtioNetHeader.frameBytes(packet, count), offloads)) {
            dropped.countFromGuest();
            return true;
        }
        Tap.WriteResult result;
        try {
            result = tap.write(packet, count);
        } catch (NativeIoException e) {
            throw failed(e);
        }
        return switch (result) {
            case SENT -> true;
            case WOULD_BLOCK -> false;
            case REFUSED -> { // the tap is down, as a NIC with its cable out drops what it is given
                dropped.countFromGuest();
                yield true;
            }
        };
    }

    @Override
    public int receive(MemorySegment buffer) {
        VirtioNetHeader.checkReceiveBuffer(buffer);
        while (true) {
            int length;
            try {
                length = tap.read(buffer);
            } catch (NativeIoException e) {
                throw failed(e);
            }
            if (length == 0) {
                return 0;
            }
            if (length >= HEADER_BYTES + VirtioNetHeader.MIN_FRAME_BYTES) {
                VirtioNetHeader.setNumBuffers(buffer, 1); // the tap skips the field, leaving what was there
                return length;
            }
            dropped.countToGuest();
        }
    }

    private NetBackendException failed(NativeIoException e) {
        return new NetBackendException("tap " + tap.name() + " can be used no longer: " + e.getMessage(), e);
    }

    @Override
    public Fd descriptor() {
        return tap;
    }

    @Override
    public DropCounts dropped() {
        return dropped;
    }

    @Override
    public void close() {
        tap.close();
    }

    @Override
    public String kind() {
        return "tap";
    }

    @Override
    public String name() {
        return tap.name();
    }

    @Override
    public String toString() {
        return "tap " + tap.name();
    }

    private static NetOffload toNet(Tap.Offload o) {
        return switch (o) {
            case CSUM -> NetOffload.CHECKSUM;
            case TSO4 -> NetOffload.TSO4;
            case TSO6 -> NetOffload.TSO6;
            case TSO_ECN -> NetOffload.TSO_ECN;
            case UFO -> NetOffload.UFO;
        };
    }

    private static Tap.Offload toTap(NetOffload o) {
        return switch (o) {
            case CHECKSUM -> Tap.Offload.CSUM;
            case TSO4 -> Tap.Offload.TSO4;
            case TSO6 -> Tap.Offload.TSO6;
            case TSO_ECN -> Tap.Offload.TSO_ECN;
            case UFO -> Tap.Offload.UFO;
        };
    }
}
