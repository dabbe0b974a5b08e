package dev.panamax.sys;

import static java.lang.foreign.MemoryLayout.paddingLayout;
import static java.lang.foreign.MemoryLayout.sequenceLayout;
import static java.lang.foreign.MemoryLayout.structLayout;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.StructLayout;
import java.util.List;

/**
 * The ABI of seccomp filters: {@code <linux/seccomp.h>}, classic BPF ({@code <linux/filter.h>}),
 * {@code AUDIT_ARCH_X86_64} ({@code <linux/audit.h>}) and {@code PR_SET_NO_NEW_PRIVS}. Every
 * {@code int} and {@code long} field is the C macro of the same name; a test compiles them and the
 * layouts in {@link #STRUCTS} against the system's headers and compares.
 */
final class SeccompAbi {
    private SeccompAbi() {}

    static final int PR_SET_NO_NEW_PRIVS = 38;
    /** The seccomp(2) system call, which glibc does not wrap. */
    static final long __NR_seccomp = 317;

    static final int SECCOMP_SET_MODE_FILTER = 1;
    static final int SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3;

    static final int SECCOMP_RET_ALLOW = 0x7fff0000;
    static final int SECCOMP_RET_USER_NOTIF = 0x7fc00000;
    static final int SECCOMP_RET_ERRNO = 0x00050000;

    static final long SECCOMP_IOCTL_NOTIF_RECV = 0xc0502100L;
    static final long SECCOMP_IOCTL_NOTIF_SEND = 0xc0182101L;
    static final int SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1;

    static final int AUDIT_ARCH_X86_64 = 0xc000003e;
    /** x32 system calls are x86_64's numbers with this bit set, under the same AUDIT_ARCH_X86_64. */
    static final int __X32_SYSCALL_BIT = 0x40000000;

    // Classic BPF opcodes: class | size | mode, class | operation | source.
    static final int BPF_LD = 0x00;
    static final int BPF_W = 0x00;
    static final int BPF_ABS = 0x20;
    static final int BPF_ALU = 0x04;
    static final int BPF_AND = 0x50;
    static final int BPF_JMP = 0x05;
    static final int BPF_JA = 0x00;
    static final int BPF_JEQ = 0x10;
    static final int BPF_JGE = 0x30;
    static final int BPF_JSET = 0x40;
    static final int BPF_K = 0x00;
    static final int BPF_RET = 0x06;
    /** The most instructions the kernel takes in one program. */
    static final int BPF_MAXINSNS = 4096;

    /** {@code struct sock_filter}: one instruction. */
    static final StructLayout SOCK_FILTER = structLayout(JAVA_SHORT.withName("code"), JAVA_BYTE.withName("jt"),
            JAVA_BYTE.withName("jf"), JAVA_INT.withName("k")).withName("sock_filter");
    /** {@code struct sock_fprog}: the instruction count and a pointer to them. */
    static final StructLayout SOCK_FPROG = structLayout(JAVA_SHORT.withName("len"), paddingLayout(6),
            ADDRESS.withName("filter")).withName("sock_fprog");
    /** {@code struct seccomp_data}: what a filter sees of a system call. */
    static final StructLayout SECCOMP_DATA = structLayout(JAVA_INT.withName("nr"), JAVA_INT.withName("arch"),
            JAVA_LONG.withName("instruction_pointer"), sequenceLayout(6, JAVA_LONG).withName("args")).withName("seccomp_data");
    /** {@code struct seccomp_notif}: a call the filter handed to the supervisor. */
    static final StructLayout SECCOMP_NOTIF = structLayout(JAVA_LONG.withName("id"), JAVA_INT.withName("pid"),
            JAVA_INT.withName("flags"), SECCOMP_DATA.withName("data")).withName("seccomp_notif");
    /** {@code struct seccomp_notif_resp}: the supervisor's answer. */
    static final StructLayout SECCOMP_NOTIF_RESP = structLayout(JAVA_LONG.withName("id"), JAVA_LONG.withName("val"),
            JAVA_INT.withName("error"), JAVA_INT.withName("flags")).withName("seccomp_notif_resp");

    static final List<StructLayout> STRUCTS = List.of(SOCK_FILTER, SOCK_FPROG, SECCOMP_DATA, SECCOMP_NOTIF, SECCOMP_NOTIF_RESP);

    static final long DATA_NR = SECCOMP_DATA.byteOffset(PathElement.groupElement("nr"));
    static final long DATA_ARCH = SECCOMP_DATA.byteOffset(PathElement.groupElement("arch"));
    static final long DATA_ARGS = SECCOMP_DATA.byteOffset(PathElement.groupElement("args"));
    static final long NOTIF_DATA = SECCOMP_NOTIF.byteOffset(PathElement.groupElement("data"));
}
