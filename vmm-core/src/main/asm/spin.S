# Real mode: a loop of ECX (set by the host) iterations with no exits, then halt. Its run time
# tells hardware virtualization (well under a microsecond per iteration) from emulation.
    .code16
    .intel_syntax noprefix
_start:
1:  dec ecx
    jnz 1b
    hlt
