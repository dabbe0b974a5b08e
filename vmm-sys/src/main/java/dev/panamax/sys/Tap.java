package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/**
 * A TAP device's queue: a non-blocking {@code /dev/net/tun} descriptor attached with {@code
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR}, so that every frame read or written is preceded by a
 * virtio-net header of {@code vnetHeaderBytes} ({@code TUNSETVNETHDRSZ}). {@link #read} and {@link
 * #write} move one frame without allocating; each may be called from one thread at a time (a
 * device's I/O thread), the two from different threads.
 */
public final class Tap extends Fd {
    /** The longest interface name Linux accepts, without its terminating NUL. */
    public static final int MAX_NAME_BYTES = IoAbi.IFNAMSIZ - 1;

    private static final String DEVICE = "/dev/net/tun";
    private static final int FLAGS = IoAbi.IFF_TAP | IoAbi.IFF_NO_PI | IoAbi.IFF_VNET_HDR;
    private static final long IFR_FLAGS = IoAbi.IFREQ.byteOffset(PathElement.groupElement("ifr_flags"));

    /** What the kernel may leave to the other side of the tap: {@code TUN_F_*} of {@code TUNSETOFFLOAD}. */
    public enum Offload {
        /** Partial checksums ({@code TUN_F_CSUM}); every other offload needs it too. */
        CSUM(IoAbi.TUN_F_CSUM),
        /** TCP segmentation over IPv4 ({@code TUN_F_TSO4}). */
        TSO4(IoAbi.TUN_F_TSO4),
        /** TCP segmentation over IPv6 ({@code TUN_F_TSO6}). */
        TSO6(IoAbi.TUN_F_TSO6),
        /** TCP segmentation of frames with ECN's CWR flag ({@code TUN_F_TSO_ECN}). */
        TSO_ECN(IoAbi.TUN_F_TSO_ECN),
        /** UDP fragmentation ({@code TUN_F_UFO}). */
        UFO(IoAbi.TUN_F_UFO);

        final int flag;

        Offload(int flag) {
            this.flag = flag;
        }
    }

    /** What {@link #write} did with a frame. */
    public enum WriteResult {
        /** The kernel took the frame. */
        SENT,
        /** The tap's queue is full: write the same frame again once the tap is writable. */
        WOULD_BLOCK,
        /** The kernel refused the frame (the interface is down, or the frame or its header is malformed). */
        REFUSED
    }

    private final String name;
    private final Set<Offload> supportedOffloads;
    // Freed by the GC, not by close(): the I/O thread may still be in read() when another thread closes.
    private final Arena arena = Arena.ofAuto();
    private final MemorySegment readState = Libc.allocateCallState(arena);
    private final MemorySegment writeState = Libc.allocateCallState(arena);
    private MemorySegment iov = arena.allocate(Libc.IOVEC, 16); // the writer's, grown for longer frames
    /** The most parts {@link #write} gathers a frame from (one writev's IOV_MAX). */
    public static final int MAX_PARTS = Libc.IOV_MAX;

    private Tap(int fd, String name, int vnetHeaderBytes) {
        super(fd, "tap " + name);
        this.name = name;
        try {
            setVnetHeaderBytes(fd, vnetHeaderBytes);
            this.supportedOffloads = Collections.unmodifiableSet(probeOffloads(fd));
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /**
     * Creates the tap {@code name}, or attaches to it when it exists (a persistent tap made with
     * {@code ip tuntap add}). It lives as long as this descriptor unless it was made persistent.
     *
     * @throws IllegalArgumentException when {@code name} is not a valid interface name
     * @throws NativeCallException naming the call and errno, with what to do for the usual causes
     */
    public static Tap open(String name, int vnetHeaderBytes) {
        String problem = nameProblem(name);
        if (problem != null) {
            throw new IllegalArgumentException(problem);
        }
        int fd = openDevice();
        try (Arena arena = Arena.ofConfined()) {
            int features = ioctlOut(fd, IoAbi.TUNGETFEATURES, "TUNGETFEATURES");
            if ((features & FLAGS) != FLAGS) {
                throw new NativeCallException("ioctl(TUNGETFEATURES)", Libc.EOPNOTSUPP,
                        "this kernel's TUN driver lacks IFF_TAP, IFF_NO_PI or IFF_VNET_HDR (it offers 0x"
                                + Integer.toHexString(features) + "); Panamax needs a Linux of the last decade");
            }
            MemorySegment ifreq = arena.allocate(IoAbi.IFREQ);
            ifreq.setString(0, name, StandardCharsets.US_ASCII);
            ifreq.set(JAVA_SHORT, IFR_FLAGS, (short) FLAGS);
            MemorySegment state = Libc.allocateCallState(arena);
            if (Libc.ioctlRaw(state, fd, IoAbi.TUNSETIFF, ifreq) < 0) {
                int errno = Libc.errno(state);
                throw new NativeCallException("ioctl(TUNSETIFF, " + name + ")", errno, setIffHint(name, errno));
            }
            return new Tap(fd, ifreq.getString(0, StandardCharsets.US_ASCII), vnetHeaderBytes);
        } catch (RuntimeException e) {
            Libc.close(fd);
            throw e;
        }
    }

    /**
     * Takes over {@code fd}, a tap queue some other program opened and attached with {@code
     * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR} (as libvirt does), making it non-blocking. On success this
     * object owns the descriptor and closes it; on failure it is left as it was.
     *
     * @throws IllegalArgumentException when {@code fd} is not such a tap
     */
    public static Tap adopt(int fd, int vnetHeaderBytes) {
        if (fd < 0) {
            throw new IllegalArgumentException("tap fd " + fd + " is not a file descriptor");
        }
        String name;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ifreq = arena.allocate(IoAbi.IFREQ);
            MemorySegment state = Libc.allocateCallState(arena);
            if (Libc.ioctlRaw(state, fd, IoAbi.TUNGETIFF, ifreq) < 0) {
                int errno = Libc.errno(state);
                throw new IllegalArgumentException(switch (errno) {
                    case Libc.EBADF -> "tap fd " + fd + " is not open in this process: pass a descriptor Panamax inherits";
                    case Libc.EBADFD -> "tap fd " + fd + " is " + DEVICE + " but not attached to a device (TUNSETIFF was never called on it)";
                    default -> "tap fd " + fd + " is not a TUN/TAP descriptor (TUNGETIFF failed: " + Libc.errnoName(errno) + ")";
                });
            }
            name = ifreq.getString(0, StandardCharsets.US_ASCII);
            int flags = ifreq.get(JAVA_SHORT, IFR_FLAGS) & 0xffff;
            if ((flags & FLAGS) != FLAGS) {
                throw new IllegalArgumentException("tap fd " + fd + " (" + name + ") was attached without "
                        + missingFlags(flags) + "; open it with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR");
            }
        }
        Libc.setNonBlocking(fd, "tap " + name);
        return new Tap(fd, name, vnetHeaderBytes);
    }

    /**
     * Why {@code name} cannot name a Linux network interface (as {@code dev_valid_name} in the kernel
     * decides), as a sentence; null when it can.
     */
    public static String nameProblem(String name) {
        if (name == null || name.isEmpty()) {
            return "a tap needs a name, such as tap0";
        }
        if (name.getBytes(StandardCharsets.UTF_8).length > MAX_NAME_BYTES) {
            return "tap name '" + name + "' is longer than " + MAX_NAME_BYTES + " bytes, the limit of Linux interface names";
        }
        if (name.equals(".") || name.equals("..")) {
            return "tap name '" + name + "' is not allowed by Linux: pick a name like tap0";
        }
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (c == '/' || c == ':' || Character.isWhitespace(c) || c < 0x21 || c > 0x7e) {
                return "tap name '" + name + "' contains '" + c + "', which Linux interface names cannot: use letters, digits, '-', '_' or '.'";
            }
        }
        return null;
    }

    /** The interface's name (the kernel's choice where {@code open} was given a pattern such as {@code tap%d}). */
    public String name() {
        return name;
    }

    /**
     * The ioctl requests a tap gets once it is open: TUNSETOFFLOAD, when the guest's driver picks its
     * offloads (on a vCPU) or a queue applies them; for the seccomp filters of those threads.
     */
    public static final Set<Long> RUNNING_IOCTL_REQUESTS = Set.of(IoAbi.TUNSETOFFLOAD);

    /** The offloads this kernel's tap driver accepts, probed once at open. */
    public Set<Offload> supportedOffloads() {
        return supportedOffloads;
    }

    /**
     * Tells the kernel which offloads it may leave to us in frames it hands to {@link #read} ({@code
     * TUNSETOFFLOAD}); the empty set makes it finish every checksum and segment itself. Frames we
     * write may use any supported offload regardless.
     */
    public void setOffloads(Set<Offload> offloads) {
        if (!supportedOffloads.containsAll(offloads)) {
            throw new IllegalArgumentException("tap " + name + " supports offloads " + supportedOffloads + ", not " + offloads);
        }
        if (!offloads.isEmpty() && !offloads.contains(Offload.CSUM)) {
            throw new IllegalArgumentException("offloads " + offloads + " need CSUM too");
        }
        setOffloadFlags(fd(), flagsOf(offloads));
    }

    /**
     * Reads one frame, its virtio-net header first, into {@code buffer}; returns its length, or 0 when
     * none is waiting. A frame longer than the buffer is cut short by the kernel, so the buffer should
     * hold the header and 65535 bytes more.
     */
    public int read(MemorySegment buffer) throws NativeIoException {
        while (true) {
            long n = Libc.readRaw(readState, fd(), buffer);
            if (n >= 0) {
                return (int) n;
            }
            int errno = Libc.errno(readState);
            if (errno == Libc.EAGAIN) {
                return 0;
            }
            if (errno != Libc.EINTR) {
                throw new NativeIoException("read(tap " + name + ")", errno,
                        errno == Libc.EBADFD ? "the interface " + name + " was deleted" : null);
            }
        }
    }

    /**
     * Writes one frame gathered from {@code parts[0, count)}, its virtio-net header first, with one
     * {@code writev(2)}: a tap takes a whole frame or none. The parts must be native segments.
     */
    public WriteResult write(MemorySegment[] parts, int count) throws NativeIoException {
        if (count < 1 || count > MAX_PARTS) {
            throw new IllegalArgumentException("a frame in " + count + " parts: not 1 to " + MAX_PARTS);
        }
        if (iov.byteSize() < count * Libc.IOVEC.byteSize()) {
            iov = arena.allocate(Libc.IOVEC, Integer.highestOneBit(count) * 2L);
        }
        Libc.describe(iov, parts, count);
        while (true) {
            long n = Libc.writevRaw(writeState, fd(), iov, count);
            if (n >= 0) {
                return WriteResult.SENT;
            }
            int errno = Libc.errno(writeState);
            switch (errno) {
                case Libc.EINTR -> { }
                case Libc.EAGAIN -> { return WriteResult.WOULD_BLOCK; }
                case Libc.EIO, Libc.EINVAL -> { return WriteResult.REFUSED; }
                default -> throw new NativeIoException("writev(tap " + name + ")", errno,
                        errno == Libc.EBADFD ? "the interface " + name + " was deleted" : null);
            }
        }
    }

    private static int openDevice() {
        try {
            return Libc.open(DEVICE, Libc.O_RDWR | Libc.O_NONBLOCK | Libc.O_CLOEXEC);
        } catch (NativeCallException e) {
            String hint = switch (e.errno()) {
                case Libc.ENOENT -> DEVICE + " does not exist: load the tun module (modprobe tun)"
                        + " or create the node (mkdir -p /dev/net && mknod /dev/net/tun c 10 200)";
                case Libc.ENODEV, Libc.ENXIO -> "the kernel has no TUN driver: load the tun module (modprobe tun)";
                case Libc.EACCES, Libc.EPERM -> "no permission to open " + DEVICE + ": run Panamax as root or with CAP_NET_ADMIN";
                default -> null;
            };
            throw hint == null ? e : new NativeCallException(e.call(), e.errno(), hint);
        }
    }

    private static String setIffHint(String name, int errno) {
        return switch (errno) {
            case Libc.EPERM, Libc.EACCES -> "creating or attaching tap " + name + " needs CAP_NET_ADMIN: run Panamax as root,"
                    + " or create the tap for your user first (ip tuntap add dev " + name + " mode tap user "
                    + System.getProperty("user.name") + ")";
            case Libc.EBUSY -> "tap " + name + " is already in use by another program: stop it or pick another name";
            case Libc.EINVAL -> name + " exists but is not a single-queue tap: pick another name, or recreate it with"
                    + " ip tuntap add dev " + name + " mode tap";
            default -> null;
        };
    }

    private static String missingFlags(int flags) {
        List<String> missing = new ArrayList<>();
        if ((flags & IoAbi.IFF_TAP) == 0) missing.add("IFF_TAP (it is a TUN, which carries IP packets, not Ethernet frames)");
        if ((flags & IoAbi.IFF_NO_PI) == 0) missing.add("IFF_NO_PI");
        if ((flags & IoAbi.IFF_VNET_HDR) == 0) missing.add("IFF_VNET_HDR");
        return String.join(", ", missing);
    }

    /** The offloads the kernel accepts: CSUM alone first, since it refuses any other without it. */
    private static Set<Offload> probeOffloads(int fd) {
        Set<Offload> supported = EnumSet.noneOf(Offload.class);
        if (offloadErrno(fd, flagsOf(EnumSet.of(Offload.CSUM))) == 0) {
            supported.add(Offload.CSUM);
            for (Offload o : EnumSet.of(Offload.TSO4, Offload.TSO6, Offload.UFO)) {
                if (offloadErrno(fd, flagsOf(EnumSet.of(Offload.CSUM, o))) == 0) supported.add(o);
            }
            if (supported.contains(Offload.TSO4)
                    && offloadErrno(fd, flagsOf(EnumSet.of(Offload.CSUM, Offload.TSO4, Offload.TSO_ECN))) == 0) {
                supported.add(Offload.TSO_ECN);
            }
        }
        setOffloadFlags(fd, 0); // none until the guest's driver asks for them
        return supported;
    }

    private static int flagsOf(Set<Offload> offloads) {
        int flags = 0;
        for (Offload o : offloads) flags |= o.flag;
        return flags;
    }

    private static void setOffloadFlags(int fd, int flags) {
        int errno = offloadErrno(fd, flags);
        if (errno != 0) {
            throw new NativeCallException("ioctl(TUNSETOFFLOAD, 0x" + Integer.toHexString(flags) + ")", errno);
        }
    }

    /** TUNSETOFFLOAD takes its flags by value; returns 0 or the errno, EINVAL meaning "not these". */
    private static int offloadErrno(int fd, int flags) {
        return (int) -Libc.tryCall((arena, state) -> Libc.ioctlRaw(state, fd, IoAbi.TUNSETOFFLOAD, flags));
    }

    /** TUNSETVNETHDRSZ takes a pointer to an int. */
    private static void setVnetHeaderBytes(int fd, int bytes) {
        try (Arena arena = Arena.ofConfined()) {
            Libc.ioctl(fd, IoAbi.TUNSETVNETHDRSZ, arena.allocateFrom(JAVA_INT, bytes), "TUNSETVNETHDRSZ, " + bytes);
        }
    }

    /** An ioctl that writes an unsigned int through its pointer argument; returns that int. */
    private static int ioctlOut(int fd, long request, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            Libc.ioctl(fd, request, out, name);
            return out.get(JAVA_INT, 0);
        }
    }
}
