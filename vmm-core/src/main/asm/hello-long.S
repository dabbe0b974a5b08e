# 64-bit long mode (page tables, GDT and EFER set up by Panamax): print a greeting on port 0xE9,
# round-trip a 64-bit value through the scratch register at 0xD0000 (read = last write + 1),
# report the result, and halt.
    .code64
    .intel_syntax noprefix
_start:
    lea rsi, [rip + greeting]
    call print
    mov rbx, 0xD0000
    mov rax, 0x1122334455667788
    mov qword ptr [rbx], rax
    mov rcx, qword ptr [rbx]
    inc rax
    lea rsi, [rip + mmio_ok]
    cmp rcx, rax
    je 1f
    lea rsi, [rip + mmio_bad]
1:  call print
    hlt

    .include "debug-console.inc"

greeting: .asciz "Hello from 64-bit long mode\n"
mmio_ok:  .asciz "MMIO round trip ok\n"
mmio_bad: .asciz "MMIO round trip FAILED\n"
