package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The programs {@link SeccompFilter} builds, run by a classic BPF interpreter written here after
 * the kernel's ({@code net/core/filter.c}, for the instructions the assembler has): the verdicts
 * for calls the kernel cannot be made to see from Java (another architecture's).
 */
class SeccompFilterTest {
    private static final int ARCH_I386 = 0x40000003;
    private static final int OPENAT = Syscalls.number("openat");

    private static final int IOCTL = Syscalls.number("ioctl");
    private static final SeccompFilter FILTER = new SeccompFilter(Set.of(Syscalls.number("read"), Syscalls.number("fsync")),
            List.of(new SeccompFilter.ArgumentCondition(OPENAT, 2, 0x3 | 0x40)),
            List.of(new SeccompFilter.ArgumentValues(IOCTL, 1, Set.of(0xae80, 0x4004ae8f))));

    /** The program's verdict for a call of {@code nr} with {@code args} on {@code arch}. */
    static int run(List<BpfAssembler.Instruction> program, int arch, int nr, long... args) {
        byte[] data = new byte[64];
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(data).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, nr).putInt(4, arch);
        for (int i = 0; i < args.length; i++) {
            b.putLong(16 + 8 * i, args[i]);
        }
        int a = 0;
        for (int pc = 0; pc < program.size(); pc++) {
            BpfAssembler.Instruction in = program.get(pc);
            switch (in.code()) {
                case 0x20 -> a = b.getInt(in.k());
                case 0x54 -> a &= in.k();
                case 0x15 -> pc += a == in.k() ? in.jt() : in.jf();
                case 0x35 -> pc += Integer.compareUnsigned(a, in.k()) >= 0 ? in.jt() : in.jf();
                case 0x06 -> {
                    return in.k();
                }
                default -> throw new AssertionError("instruction " + in + " not interpreted");
            }
        }
        throw new AssertionError("the program ran off its end");
    }

    @Test
    void listedCallsAreAllowedAndOthersGoToTheSupervisor() {
        var program = FILTER.program();
        assertThat(run(program, SeccompAbi.AUDIT_ARCH_X86_64, Syscalls.number("read"))).isEqualTo(SeccompAbi.SECCOMP_RET_ALLOW);
        assertThat(run(program, SeccompAbi.AUDIT_ARCH_X86_64, Syscalls.number("fsync"))).isEqualTo(SeccompAbi.SECCOMP_RET_ALLOW);
        assertThat(run(program, SeccompAbi.AUDIT_ARCH_X86_64, Syscalls.number("write"))).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
        assertThat(run(program, SeccompAbi.AUDIT_ARCH_X86_64, Syscalls.number("socket"))).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
    }

    @Test
    void anotherArchitectureAndX32NumbersAreRefusedEvenForListedNumbers() {
        var program = FILTER.program();
        // read is 0 on x86_64; 3 on i386, and 0 there is restart_syscall: the number alone means nothing.
        assertThat(run(program, ARCH_I386, Syscalls.number("read"))).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
        assertThat(run(program, ARCH_I386, Syscalls.number("fsync"))).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
        assertThat(run(program, ARCH_I386, IOCTL, 3, 0xae80)).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
        assertThat(run(program, SeccompAbi.AUDIT_ARCH_X86_64, SeccompAbi.__X32_SYSCALL_BIT | Syscalls.number("read")))
                .isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
    }

    @Test
    void aConditionalCallIsAllowedOnlyWithoutItsForbiddenBits() {
        var program = FILTER.program();
        int x86 = SeccompAbi.AUDIT_ARCH_X86_64;
        assertThat(run(program, x86, OPENAT, -100, 0x1000, 0 /* O_RDONLY */)).isEqualTo(SeccompAbi.SECCOMP_RET_ALLOW);
        assertThat(run(program, x86, OPENAT, -100, 0x1000, 0x80000 /* O_CLOEXEC */)).isEqualTo(SeccompAbi.SECCOMP_RET_ALLOW);
        assertThat(run(program, x86, OPENAT, -100, 0x1000, 2 /* O_RDWR */)).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
        assertThat(run(program, x86, OPENAT, -100, 0x1000, 0x40 /* O_CREAT */)).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
        // The high word is not looked at, and a kernel takes flags as an int.
        assertThat(run(program, x86, OPENAT, -100, 0x1000, 0x1_0000_0000L)).isEqualTo(SeccompAbi.SECCOMP_RET_ALLOW);
        assertThat(run(program, x86, Syscalls.number("read"), 0, 0, 2)).isEqualTo(SeccompAbi.SECCOMP_RET_ALLOW);
    }

    @Test
    void aListedCallIsAllowedOnlyWithOneOfItsValues() {
        var program = FILTER.program();
        int x86 = SeccompAbi.AUDIT_ARCH_X86_64;
        assertThat(run(program, x86, IOCTL, 3, 0xae80)).isEqualTo(SeccompAbi.SECCOMP_RET_ALLOW);
        assertThat(run(program, x86, IOCTL, 3, 0x4004ae8f)).isEqualTo(SeccompAbi.SECCOMP_RET_ALLOW);
        assertThat(run(program, x86, IOCTL, 3, 0x5412)).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
        assertThat(run(program, x86, IOCTL, 3, 0)).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
        // The value is the request (argument 1), not the fd, and the high word is not looked at: the kernel's cmd is 32 bits.
        assertThat(run(program, x86, IOCTL, 0xae80, 7)).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
        assertThat(run(program, x86, IOCTL, 3, 0x7_0000_ae80L)).isEqualTo(SeccompAbi.SECCOMP_RET_ALLOW);
        // Other calls still reach their own rules after the list.
        assertThat(run(program, x86, OPENAT, -100, 0x1000, 0)).isEqualTo(SeccompAbi.SECCOMP_RET_ALLOW);
        assertThat(run(program, x86, Syscalls.number("write"), 3, 0xae80)).isEqualTo(SeccompAbi.SECCOMP_RET_USER_NOTIF);
    }

    @Test
    void aCallIsEitherAllowedWithAnyArgumentsOrListed() {
        assertThatThrownBy(() -> new SeccompFilter(Set.of(IOCTL), List.of(), List.of(new SeccompFilter.ArgumentValues(IOCTL, 1, Set.of(1)))))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void jumpsOutOfReachAreRefused() {
        BpfAssembler asm = new BpfAssembler().jumpIfEqual(1, "far", BpfAssembler.NEXT);
        for (int i = 0; i < 256; i++) {
            asm.ret(0);
        }
        asm.label("far").ret(0);
        assertThatThrownBy(asm::assemble).isInstanceOf(IllegalStateException.class).hasMessageContaining("256 instructions");
        assertThatThrownBy(() -> new BpfAssembler().jumpIfEqual(1, "nowhere", BpfAssembler.NEXT).ret(0).assemble())
                .hasMessageContaining("undefined label 'nowhere'");
    }
}
