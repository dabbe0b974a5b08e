package dev.panamax.sys;

import static dev.panamax.sys.SeccompAbi.BPF_ABS;
import static dev.panamax.sys.SeccompAbi.BPF_ALU;
import static dev.panamax.sys.SeccompAbi.BPF_AND;
import static dev.panamax.sys.SeccompAbi.BPF_JEQ;
import static dev.panamax.sys.SeccompAbi.BPF_JGE;
import static dev.panamax.sys.SeccompAbi.BPF_JMP;
import static dev.panamax.sys.SeccompAbi.BPF_K;
import static dev.panamax.sys.SeccompAbi.BPF_LD;
import static dev.panamax.sys.SeccompAbi.BPF_MAXINSNS;
import static dev.panamax.sys.SeccompAbi.BPF_RET;
import static dev.panamax.sys.SeccompAbi.BPF_W;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A classic BPF assembler for the few instructions a seccomp filter needs: load a 32-bit word of
 * {@code struct seccomp_data}, AND it with a constant, compare it with a constant and jump, return
 * a verdict. Jumps name labels; {@link #assemble} resolves them into the forward offsets classic BPF
 * has (0 to 255 instructions ahead, never back, so a program always ends).
 */
final class BpfAssembler {
    /** One instruction of {@code struct sock_filter}. */
    record Instruction(int code, int jt, int jf, int k) {}

    /** The label of the instruction that follows a jump: no jump. */
    static final String NEXT = "";

    private record Pending(int code, String jt, String jf, int k) {}

    private final List<Pending> code = new ArrayList<>();
    private final Map<String, Integer> labels = new HashMap<>();

    /** A = the 32-bit word at byte {@code offset} of {@code struct seccomp_data}. */
    BpfAssembler load(long offset) {
        return add(BPF_LD | BPF_W | BPF_ABS, NEXT, NEXT, (int) offset);
    }

    /** A &= {@code mask}. */
    BpfAssembler and(int mask) {
        return add(BPF_ALU | BPF_AND | BPF_K, NEXT, NEXT, mask);
    }

    /** Jumps to {@code ifEqual} when A == {@code k}, else to {@code otherwise}. */
    BpfAssembler jumpIfEqual(int k, String ifEqual, String otherwise) {
        return add(BPF_JMP | BPF_JEQ | BPF_K, ifEqual, otherwise, k);
    }

    /** Jumps to {@code ifAtLeast} when A >= {@code k} (unsigned), else to {@code otherwise}. */
    BpfAssembler jumpIfAtLeast(int k, String ifAtLeast, String otherwise) {
        return add(BPF_JMP | BPF_JGE | BPF_K, ifAtLeast, otherwise, k);
    }

    /** Ends the program with verdict {@code k} (a {@code SECCOMP_RET_*}). */
    BpfAssembler ret(int k) {
        return add(BPF_RET | BPF_K, NEXT, NEXT, k);
    }

    /** Names the next instruction {@code name}. */
    BpfAssembler label(String name) {
        if (name.isEmpty() || labels.putIfAbsent(name, code.size()) != null) {
            throw new IllegalArgumentException("label '" + name + "' is empty or defined twice");
        }
        return this;
    }

    private BpfAssembler add(int op, String jt, String jf, int k) {
        code.add(new Pending(op, jt, jf, k));
        return this;
    }

    /**
     * The program, its jumps resolved.
     *
     * @throws IllegalStateException when a label is missing, behind its jump or too far ahead, or
     *                               the program is longer than the kernel takes
     */
    List<Instruction> assemble() {
        if (code.isEmpty() || code.size() > BPF_MAXINSNS) {
            throw new IllegalStateException("a filter has 1 to " + BPF_MAXINSNS + " instructions, not " + code.size());
        }
        List<Instruction> out = new ArrayList<>(code.size());
        for (int i = 0; i < code.size(); i++) {
            Pending p = code.get(i);
            out.add(new Instruction(p.code(), offset(i, p.jt()), offset(i, p.jf()), p.k()));
        }
        return List.copyOf(out);
    }

    private int offset(int from, String label) {
        if (label.equals(NEXT)) {
            return 0;
        }
        Integer target = labels.get(label);
        if (target == null) {
            throw new IllegalStateException("jump to undefined label '" + label + "'");
        }
        int offset = target - from - 1;
        if (offset < 0 || offset > 255) {
            throw new IllegalStateException("label '" + label + "' is " + offset + " instructions from its jump; classic BPF jumps 0 to 255 ahead");
        }
        return offset;
    }
}
