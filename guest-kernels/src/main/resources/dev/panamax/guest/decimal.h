/* Shared by the guest's C programs (vsock.c, exec-agent.c): reading a number from the command line. */
#ifndef PANAMAX_DECIMAL_H
#define PANAMAX_DECIMAL_H

#include <stdint.h>
#include <string.h>

/* A decimal 32-bit number: digits only, no sign, no spaces, at most 4294967294 (-1U means "any" to vsock). */
static inline int parse_u32(const char *text, uint32_t *value) {
    size_t n = strlen(text);
    if (n == 0 || n > 10) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9') return -1;
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (v >= UINT32_MAX) return -1;
    *value = (uint32_t)v;
    return 0;
}

#endif
