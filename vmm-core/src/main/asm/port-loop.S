# Real mode: ECX (set by the host) OUTs to port 0xEB, each one a vCPU exit handled by the VMM,
# then halt. The exit round-trip benchmark runs this from Java and from C.
    .code16
    .intel_syntax noprefix
_start:
    mov dx, 0xEB
1:  out dx, al
    dec ecx
    jnz 1b
    hlt
