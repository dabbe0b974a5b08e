# Real mode: increments the 32-bit counter at CS:0x100 for ever, never exiting to the VMM. The
# host reads the counter to see whether the vCPU is running, and must kick it out to pause or stop.
    .code16
    .intel_syntax noprefix
_start:
    mov ax, cs
    mov ds, ax
1:  inc dword ptr [0x100]
    jmp 1b
