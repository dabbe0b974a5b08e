# 64-bit long mode, run by every vCPU at once with its index in RDI: each prints
# "Hello from vCPU N" on port 0xE9, one line at a time under a spinlock in guest memory, then halts.
    .code64
    .intel_syntax noprefix
_start:
    lea rbx, [rip + lock]
1:  mov eax, 1
    xchg eax, dword ptr [rbx]      # xchg with memory is always locked
    test eax, eax
    jnz 1b
    lea rsi, [rip + greeting]
    call print
    mov eax, edi
    add al, '0'
    out dx, al
    mov al, '\n'
    out dx, al
    mov dword ptr [rbx], 0         # release
    hlt

    .include "debug-console.inc"

greeting: .asciz "Hello from vCPU "
    .balign 4
lock: .long 0
