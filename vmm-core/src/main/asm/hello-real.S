# Real mode: print a greeting on the debug console (port 0xE9), round-trip a value through the
# scratch register (MMIO at 0xD0000, which answers a read with the last value written plus one),
# report the result, and halt. CS is based at the load address; DS is set to match.
    .code16
    .intel_syntax noprefix
_start:
    mov ax, cs
    mov ds, ax
    lea si, greeting
    call print
    mov ax, 0xD000
    mov es, ax
    mov word ptr es:[0], 0x1234
    mov ax, word ptr es:[0]
    lea si, mmio_ok
    cmp ax, 0x1235
    je 1f
    lea si, mmio_bad
1:  call print
    hlt

    .include "debug-console.inc"

greeting: .asciz "Hello from real mode\n"
mmio_ok:  .asciz "MMIO round trip ok\n"
mmio_bad: .asciz "MMIO round trip FAILED\n"
