/* SPDX-License-Identifier: Apache-2.0 */
#include "err.h"

#include <errno.h>

#include <stdarg.h>
#include <stdio.h>

static const char *const messages[TS_ERR_COUNT] = {
    [TS_OK] = "success",
    [TS_ENOMEM] = "out of memory",
    [TS_EINVAL] = "invalid argument",
    [TS_ESYS] = "system error",
    [TS_ECONFIG] = "invalid configuration",
    [TS_EPARSE] = "malformed input",
    [TS_ETIMEOUT] = "timeout",
    [TS_ECONNECT] = "connection failed",
    [TS_ESHORT] = "short response",
    [TS_ECRC] = "CRC error",
    [TS_EIO] = "I/O error",
    [TS_ENOTFOUND] = "not found",
    [TS_EFULL] = "full",
    [TS_ECONFLICT] = "owned by another",
    [TS_EBUSY] = "busy, try again",
};

static const char *const exceptions[] = {
    [1] = "Modbus exception: illegal function",
    [2] = "Modbus exception: illegal data address",
    [3] = "Modbus exception: illegal data value",
    [4] = "Modbus exception: slave device failure",
    [5] = "Modbus exception: acknowledge",
    [6] = "Modbus exception: slave device busy",
    [8] = "Modbus exception: memory parity error",
    [10] = "Modbus exception: gateway path unavailable",
    [11] = "Modbus exception: gateway target failed to respond",
};

const char *ts_strerror(int err)
{
    if (err >= 0 && err < TS_ERR_COUNT && messages[err])
        return messages[err];
    if (err > TS_EDEVICE_BASE) {
        int code = err - TS_EDEVICE_BASE;
        if (code < (int)(sizeof exceptions / sizeof exceptions[0]) && exceptions[code])
            return exceptions[code];
        return "Modbus exception: unknown code";
    }
    return "unknown error";
}

static void vwhy(char *why, size_t why_size, const char *fmt, va_list ap)
{
    int saved = errno; /* the caller may still report strerror(errno) */
    if (why && why_size)
        vsnprintf(why, why_size, fmt, ap);
    errno = saved;
}

int ts_fail(char *why, size_t why_size, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwhy(why, why_size, fmt, ap);
    va_end(ap);
    return code;
}

void ts_why(char *why, size_t why_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwhy(why, why_size, fmt, ap);
    va_end(ap);
}
