/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"

/* The text, shortened and escaped, for a message. */
static const char *shown(const char *text, char *buf, size_t size)
{
    char cut[48];
    snprintf(cut, sizeof cut, "%.40s%s", text, strlen(text) > 40 ? "..." : "");
    ts_config_escape(buf, size, cut);
    return buf;
}

/* [+-]digits, and for a double an optional fraction and exponent: only these
 * characters, so strtod never sees nan, inf, hex or blanks. */
static int looks_numeric(const char *text, int fraction)
{
    const char *p = text + (*text == '+' || *text == '-');
    if (!isdigit((unsigned char)*p) && !(fraction && *p == '.' && isdigit((unsigned char)p[1])))
        return 0;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p) && !(fraction && strchr(".eE+-", *p)))
            return 0;
    return 1;
}

int ts_parse_double(const char *text, double min, double max, double *out, char *why,
                    size_t why_size)
{
    char buf[200], *end;
    double v;

    if (!text || !looks_numeric(text, 1))
        return ts_fail(why, why_size, TS_EINVAL, "'%s' is not a number",
                       shown(text ? text : "", buf, sizeof buf));
    errno = 0;
    v = strtod(text, &end);
    if (*end)
        return ts_fail(why, why_size, TS_EINVAL, "'%s' is not a number", shown(text, buf, sizeof buf));
    if (errno == ERANGE || !isfinite(v) || v < min || v > max)
        return ts_fail(why, why_size, TS_EINVAL, "'%s' is out of range [%.15g, %.15g]",
                       shown(text, buf, sizeof buf), min, max);
    *out = v;
    return TS_OK;
}

int ts_parse_int(const char *text, int min, int max, int *out, char *why, size_t why_size)
{
    char buf[200], *end;
    long long v;

    if (!text || !looks_numeric(text, 0))
        return ts_fail(why, why_size, TS_EINVAL, "'%s' is not an integer",
                       shown(text ? text : "", buf, sizeof buf));
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno == ERANGE || *end || v < min || v > max)
        return ts_fail(why, why_size, TS_EINVAL, "'%s' is out of range [%d, %d]",
                       shown(text, buf, sizeof buf), min, max);
    *out = (int)v;
    return TS_OK;
}

int ts_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out, char *why,
                 size_t why_size)
{
    char buf[200], *end;
    unsigned long long v;

    /* strtoull would take "-1" as 2^64-1: digits only */
    if (!text || *text == '-' || *text == '+' || !looks_numeric(text, 0))
        return ts_fail(why, why_size, TS_EINVAL, "'%s' is not a non-negative integer",
                       shown(text ? text : "", buf, sizeof buf));
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno == ERANGE || *end || v < min || v > max)
        return ts_fail(why, why_size, TS_EINVAL, "'%s' is out of range [%" PRIu64 ", %" PRIu64 "]",
                       shown(text, buf, sizeof buf), min, max);
    *out = (uint64_t)v;
    return TS_OK;
}
