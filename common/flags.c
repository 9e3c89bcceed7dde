/* SPDX-License-Identifier: Apache-2.0 */
#include "flags.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static const char *const flag_names[] = {
    "first", "wrap", "reset", "downward", "glitch", "signed", "recovered", "merged", "rebased",
};
#define N_FLAG_NAMES (sizeof flag_names / sizeof flag_names[0])

void ts_flags_format(uint32_t flags, char *buf, unsigned size)
{
    size_t len = 0;
    uint32_t unnamed = flags & ~((UINT32_C(1) << N_FLAG_NAMES) - 1);

    if (size == 0)
        return;
    buf[0] = '\0';
    for (unsigned i = 0; i < N_FLAG_NAMES && len < size; i++) {
        if (flags & (UINT32_C(1) << i))
            len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? "|" : "", flag_names[i]);
    }
    if (unnamed && len < size)
        snprintf(buf + len, size - len, "%s0x%" PRIx32, len ? "|" : "", unnamed);
}

int ts_flags_parse(const char *s, uint32_t *flags)
{
    uint32_t f = 0;

    while (*s) {
        size_t n = strcspn(s, "|");
        unsigned i = 0;

        while (i < N_FLAG_NAMES && !(strlen(flag_names[i]) == n && strncmp(s, flag_names[i], n) == 0))
            i++;
        if (i < N_FLAG_NAMES) {
            f |= UINT32_C(1) << i;
        } else if (n > 2 && n <= 10 && strncmp(s, "0x", 2) == 0 &&
                   strspn(s + 2, "0123456789abcdefABCDEF") == n - 2) {
            f |= (uint32_t)strtoul(s + 2, NULL, 16);
        } else {
            return TS_EINVAL;
        }
        s += n;
        if (*s == '|' && *++s == '\0')
            return TS_EINVAL; /* trailing '|' */
    }
    *flags = f;
    return TS_OK;
}
