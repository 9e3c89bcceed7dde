/* SPDX-License-Identifier: Apache-2.0 */
/* err.h - the one error convention of turnstile-edge.
 *
 * Every fallible call returns an int: TS_OK (0) on success, one of the
 * positive TS_E* codes below on failure. errno stays set for system errors
 * (TS_ESYS) so that strerror(errno) can add detail. Device-reported errors
 * (Modbus exception codes) live above TS_EDEVICE_BASE, as libmodbus keeps them
 * above MODBUS_ENOBASE. */
#ifndef TS_ERR_H
#define TS_ERR_H

#include <stddef.h>

enum ts_err {
    TS_OK = 0,
    TS_ENOMEM,    /* out of memory */
    TS_EINVAL,    /* invalid argument or value */
    TS_ESYS,      /* system call failed, see errno */
    TS_ECONFIG,   /* configuration is invalid */
    TS_EPARSE,    /* malformed input (CSV line, file) */
    TS_ETIMEOUT,  /* device did not answer in time */
    TS_ECONNECT,  /* could not connect or open the device */
    TS_ESHORT,    /* short or malformed response */
    TS_ECRC,      /* CRC error on a serial frame */
    TS_EIO,       /* other I/O failure on a device link */
    TS_ENOTFOUND, /* no such item */
    TS_EFULL,     /* buffer or store is full */
    TS_ECONFLICT, /* someone else owns it (another bridge took the partition) */
    TS_EBUSY,     /* try again later (a queue is full) */
    TS_ERR_COUNT,
    TS_EDEVICE_BASE = 1000 /* + Modbus exception code */
};

/* A static string describing err; never NULL. */
const char *ts_strerror(int err);

/* Writes the sentence fmt into why (if why and why_size), keeps errno, and
 * returns code:
 * `return ts_fail(why, why_size, TS_ECONFIG, "port %d out of range", p);` */
int ts_fail(char *why, size_t why_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same without a code, for a caller that goes on after saying why. */
void ts_why(char *why, size_t why_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
