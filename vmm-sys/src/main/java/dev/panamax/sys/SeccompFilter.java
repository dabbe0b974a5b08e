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
 * (the i386 {@code int 0x80} entry), any x32 number, any call not listed, a listed call with an
 * argument condition whose argument has a forbidden bit set, and a listed call with an argument
 * list whose argument is none of its values.
 *
 * @param allowed the system calls allowed with any arguments
 * @param conditional the system calls allowed only when an argument has none of some bits set
 * @param listed the system calls allowed only when an argument is one of some values
 */
record SeccompFilter(Set<Integer> allowed, List<ArgumentCondition> conditional, List<ArgumentValues> listed) {

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

    /**
     * System call {@code syscall} is allowed when the low 32 bits of its argument {@code argument}
     * are one of {@code values}: for example {@code ioctl} only with the requests a thread makes.
     * The low word is all a kernel looks at where the argument is an int ({@code ioctl}'s request is
     * an {@code unsigned int} in the kernel, whatever its C prototype says).
     */
    record ArgumentValues(int syscall, int argument, Set<Integer> values) {
        ArgumentValues {
            if (argument < 0 || argument > 5) {
                throw new IllegalArgumentException("a system call has arguments 0 to 5, not " + argument);
            }
            values = Set.copyOf(new TreeSet<>(values));
        }
    }

    SeccompFilter {
        allowed = Set.copyOf(new TreeSet<>(allowed));
        conditional = List.copyOf(conditional);
        listed = List.copyOf(listed);
        for (ArgumentValues l : listed) {
            if (allowed.contains(l.syscall())) {
                throw new IllegalArgumentException("system call " + l.syscall() + " is allowed with any arguments and with listed ones");
            }
        }
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
        for (int i = 0; i < listed.size(); i++) {
            ArgumentValues l = listed.get(i);
            String notThisOne = "list-" + i;
            asm.jumpIfEqual(l.syscall(), BpfAssembler.NEXT, notThisOne)
                    .load(DATA_ARGS + 8L * l.argument());
            for (int value : new TreeSet<>(l.values())) {
                asm.jumpIfEqual(value, allow, BpfAssembler.NEXT);
            }
            asm.jumpIfEqual(0, forbidden, forbidden) // none of them: refused (both ways, as classic BPF has no plain jump here)
                    .label(notThisOne);
        }
        return asm.label(forbidden).ret(SeccompAbi.SECCOMP_RET_USER_NOTIF)
                .label(allow).ret(SeccompAbi.SECCOMP_RET_ALLOW)
                .assemble();
    }
}
