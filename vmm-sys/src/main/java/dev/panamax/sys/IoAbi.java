package dev.panamax.sys;

import static java.lang.foreign.MemoryLayout.paddingLayout;
import static java.lang.foreign.MemoryLayout.sequenceLayout;
import static java.lang.foreign.MemoryLayout.structLayout;

import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * The ABI of device I/O beside KVM: TUN/TAP ({@code <linux/if_tun.h>}, {@code struct ifreq} of
 * {@code <net/if.h>}), epoll ({@code <sys/epoll.h>}) and Unix stream sockets ({@code <sys/un.h>}).
 * Every {@code int} and {@code long} field is the C macro of the same name; a test compiles them and
 * the layouts in {@link #STRUCTS} against the system's headers and compares.
 */
final class IoAbi {
    private IoAbi() {}

    static final int IFNAMSIZ = 16;

    /** {@code struct ifreq}: the name, then a 24-byte union of which TUN uses {@code short ifr_flags}. */
    static final StructLayout IFREQ = structLayout(
            sequenceLayout(IFNAMSIZ, ValueLayout.JAVA_BYTE).withName("ifr_name"),
            ValueLayout.JAVA_SHORT.withName("ifr_flags"), paddingLayout(22)).withName("ifreq");

    /** {@code struct epoll_event} is packed on x86-64: the 64-bit data sits at offset 4. */
    static final StructLayout EPOLL_EVENT = structLayout(
            ValueLayout.JAVA_INT.withName("events"), ValueLayout.JAVA_LONG_UNALIGNED.withName("data")).withName("epoll_event");

    static final StructLayout SOCKADDR_UN = structLayout(
            ValueLayout.JAVA_SHORT.withName("sun_family"),
            sequenceLayout(108, ValueLayout.JAVA_BYTE).withName("sun_path")).withName("sockaddr_un");

    static final List<StructLayout> STRUCTS = List.of(IFREQ, EPOLL_EVENT, SOCKADDR_UN);

    // ioctl numbers: _IOW('T', 202, int) and so on.
    static final long TUNSETIFF = 0x400454caL;
    static final long TUNGETIFF = 0x800454d2L;
    static final long TUNGETFEATURES = 0x800454cfL;
    static final long TUNSETOFFLOAD = 0x400454d0L;
    static final long TUNSETVNETHDRSZ = 0x400454d8L;

    static final int IFF_TAP = 0x0002;
    static final int IFF_NO_PI = 0x1000;
    static final int IFF_VNET_HDR = 0x4000;

    static final int TUN_F_CSUM = 0x01;
    static final int TUN_F_TSO4 = 0x02;
    static final int TUN_F_TSO6 = 0x04;
    static final int TUN_F_TSO_ECN = 0x08;
    static final int TUN_F_UFO = 0x10;

    static final int EPOLL_CLOEXEC = 0x80000;
    static final int EPOLL_CTL_ADD = 1;
    static final int EPOLL_CTL_DEL = 2;
    static final int EPOLL_CTL_MOD = 3;
    static final int EPOLLIN = 0x001;
    static final int EPOLLOUT = 0x004;
    static final int EPOLLERR = 0x008;
    static final int EPOLLHUP = 0x010;

    static final int AF_UNIX = 1;
    static final int SOCK_STREAM = 1;
    static final int SOCK_NONBLOCK = 0x800;
    static final int SOCK_CLOEXEC = 0x80000;
    static final int MSG_NOSIGNAL = 0x4000;
}
