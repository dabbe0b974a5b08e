package dev.panamax.sys;

import static java.lang.foreign.MemoryLayout.paddingLayout;
import static java.lang.foreign.MemoryLayout.sequenceLayout;
import static java.lang.foreign.MemoryLayout.structLayout;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * The ABI of device I/O beside KVM: TUN/TAP ({@code <linux/if_tun.h>}, {@code struct ifreq} of
 * {@code <net/if.h>}), epoll ({@code <sys/epoll.h>}), Unix stream sockets ({@code <sys/un.h>}) and
 * io_uring ({@code <linux/io_uring.h>}).
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

    private static StructLayout ringOffsets(String name, String... fields) {
        MemoryLayout[] members = new MemoryLayout[fields.length + 1];
        for (int i = 0; i < fields.length; i++) {
            members[i] = ValueLayout.JAVA_INT.withName(fields[i]);
        }
        members[fields.length] = paddingLayout(8); // resv2 in older headers, user_addr in newer ones
        return structLayout(members).withName(name);
    }

    /** {@code struct io_uring_params}: what io_uring_setup takes and where it says the rings' fields are. */
    static final StructLayout IO_URING_PARAMS = structLayout(
            ValueLayout.JAVA_INT.withName("sq_entries"), ValueLayout.JAVA_INT.withName("cq_entries"), ValueLayout.JAVA_INT.withName("flags"),
            ValueLayout.JAVA_INT.withName("sq_thread_cpu"), ValueLayout.JAVA_INT.withName("sq_thread_idle"),
            ValueLayout.JAVA_INT.withName("features"), ValueLayout.JAVA_INT.withName("wq_fd"), paddingLayout(12),
            ringOffsets("io_sqring_offsets", "head", "tail", "ring_mask", "ring_entries", "flags", "dropped", "array", "resv1")
                    .withName("sq_off"),
            ringOffsets("io_cqring_offsets", "head", "tail", "ring_mask", "ring_entries", "overflow", "cqes", "flags", "resv1")
                    .withName("cq_off")).withName("io_uring_params");

    /** {@code struct io_uring_sqe}, the members a vectored read or write sets (the others are unions and stay zero). */
    static final StructLayout IO_URING_SQE = structLayout(
            ValueLayout.JAVA_BYTE.withName("opcode"), ValueLayout.JAVA_BYTE.withName("flags"), ValueLayout.JAVA_SHORT.withName("ioprio"),
            ValueLayout.JAVA_INT.withName("fd"), ValueLayout.JAVA_LONG.withName("off"), ValueLayout.JAVA_LONG.withName("addr"),
            ValueLayout.JAVA_INT.withName("len"), ValueLayout.JAVA_INT.withName("rw_flags"), ValueLayout.JAVA_LONG.withName("user_data"),
            paddingLayout(24)).withName("io_uring_sqe");

    /** {@code struct io_uring_cqe} without the big-CQE tail this ring does not ask for. */
    static final StructLayout IO_URING_CQE = structLayout(
            ValueLayout.JAVA_LONG.withName("user_data"), ValueLayout.JAVA_INT.withName("res"), ValueLayout.JAVA_INT.withName("flags"))
            .withName("io_uring_cqe");

    /** {@code struct io_uring_restriction}: what a ring may do once enabled. */
    static final StructLayout IO_URING_RESTRICTION = structLayout(
            ValueLayout.JAVA_SHORT.withName("opcode"), ValueLayout.JAVA_BYTE.withName("sqe_op"), paddingLayout(13))
            .withName("io_uring_restriction");

    static final List<StructLayout> STRUCTS = List.of(IFREQ, EPOLL_EVENT, SOCKADDR_UN, IO_URING_PARAMS, IO_URING_SQE, IO_URING_CQE,
            IO_URING_RESTRICTION);

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

    static final int IORING_SETUP_R_DISABLED = 1 << 6;
    static final int IORING_FEAT_SINGLE_MMAP = 1 << 0;
    static final long IORING_OFF_SQ_RING = 0L;
    static final long IORING_OFF_SQES = 0x10000000L;
    static final int IORING_ENTER_GETEVENTS = 1 << 0;
    static final int IORING_OP_READV = 1;
    static final int IORING_OP_WRITEV = 2;
    static final int IOSQE_FIXED_FILE = 1 << 0;
    static final int IORING_REGISTER_FILES = 2;
    static final int IORING_UNREGISTER_FILES = 3;
    static final int IORING_REGISTER_RESTRICTIONS = 11;
    static final int IORING_REGISTER_ENABLE_RINGS = 12;
    static final int IORING_RESTRICTION_REGISTER_OP = 0;
    static final int IORING_RESTRICTION_SQE_OP = 1;
    static final int IORING_RESTRICTION_SQE_FLAGS_REQUIRED = 3;
}
