package dev.panamax.sys;

import static dev.panamax.sys.SeccompAbi.DATA_ARCH;
import static dev.panamax.sys.SeccompAbi.DATA_ARGS;
import static dev.panamax.sys.SeccompAbi.DATA_NR;

import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * A seccomp filter that allows a fixed list of x86_64 system calls and hands every other one to the
 * {@linkplain Seccomp supervisor} ({@code SECCOMP_RET_USER_NOTIF}): any call of another architecture
 * (the i386 {@code int 0x80} entry), any x32 number, any call not listed, and a listed call with an
 * argument condition whose argument has a forbidden bit set.
 *
 * @param allowed the system calls allowed with any arguments
 * @param conditional the system calls allowed only when an argument has none of some bits set
 */
record SeccompFilter(Set<Integer> allowed, List<ArgumentCondition> conditional) {

    /**
     * System call {@code syscall} is allowed when the low 32 bits of its argument {@code argument}
     * (0 to 5) have none of {@code forbiddenBits} set: for example {@code openat} only without
     * {@code O_WRONLY}, {@code O_RDWR} or {@code O_CREAT}.
     */
    record ArgumentCondition(int syscall, int argument, int forbiddenBits) {
        ArgumentCondition {
            if (argument < 0 || argument > 5) {
                throw new IllegalArgumentException("a system call has arguments 0 to 5, not " + argument);
            }
        }
    }

    SeccompFilter {
        allowed = Set.copyOf(new TreeSet<>(allowed));
        conditional = List.copyOf(conditional);
    }

    /** The program for x86_64. */
    List<BpfAssembler.Instruction> program() {
        return program(SeccompAbi.AUDIT_ARCH_X86_64);
    }

    /** The program, allowing calls of architecture {@code arch}: another than x86_64 only for the test that sees the check work. */
    List<BpfAssembler.Instruction> program(int arch) {
        String forbidden = "forbidden";
        String allow = "allow";
        BpfAssembler asm = new BpfAssembler()
                .load(DATA_ARCH).jumpIfEqual(arch, BpfAssembler.NEXT, forbidden)
                .load(DATA_NR).jumpIfAtLeast(SeccompAbi.__X32_SYSCALL_BIT, forbidden, BpfAssembler.NEXT);
        for (int nr : new TreeSet<>(allowed)) {
            asm.jumpIfEqual(nr, allow, BpfAssembler.NEXT);
        }
        // A still holds the number here: a condition that does not match jumps over its argument checks.
        for (int i = 0; i < conditional.size(); i++) {
            ArgumentCondition c = conditional.get(i);
            String notThisOne = "condition-" + i;
            asm.jumpIfEqual(c.syscall(), BpfAssembler.NEXT, notThisOne)
                    .load(DATA_ARGS + 8L * c.argument()) // the low word: x86_64 is little-endian
                    .and(c.forbiddenBits())
                    .jumpIfEqual(0, allow, forbidden)
                    .label(notThisOne);
        }
        return asm.label(forbidden).ret(SeccompAbi.SECCOMP_RET_USER_NOTIF)
                .label(allow).ret(SeccompAbi.SECCOMP_RET_ALLOW)
                .assemble();
    }
}
