/* SPDX-License-Identifier: Apache-2.0 */
/* decimal.h - an unsigned decimal number from untrusted bytes.
 *
 * ts_decimal_u64 takes exactly [s, s + len): 1 to 20 ASCII digits, nothing
 * else (no sign, no space), and fails rather than wrap on overflow. Leading
 * zeros are accepted; a caller that wants the canonical form checks s[0]
 * itself. Inline: the reading codec calls it per field on the hot path. */
#ifndef TS_DECIMAL_H
#define TS_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True and *out set if the bytes are a number that fits 64 bits; false and
 * *out untouched otherwise. */
static inline bool ts_decimal_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)((unsigned char)s[i] - '0'); /* '0'..'9' only */
        if (d > 9)
            return false;
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

#endif
