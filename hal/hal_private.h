/* SPDX-License-Identifier: Apache-2.0 */
/* hal_private.h - the backend table behind ts_source_* (hal.h).
 *
 * Private to hal/ (and to unit tests of one backend). A backend is a const
 * table of function pointers filled with designated initialisers, as
 * libmodbus's modbus_backend_t; hooks a backend does not need are NULL. */
#ifndef TS_HAL_PRIVATE_H
#define TS_HAL_PRIVATE_H

#include "hal.h"

/* All hooks run on the device's poll thread, except create/destroy. */
struct ts_hal_backend {
    const char *name;
    /* Allocates backend state into src->data. TS_OK or an error. */
    int (*create)(struct ts_source *src);
    /* Opens the link (connect, open port, request lines). */
    int (*open)(struct ts_source *src);
    /* Reads the cumulative counters of turnstile i (index into src->turnstiles). */
    int (*read)(struct ts_source *src, size_t i, uint64_t *entries, uint64_t *exits);
    /* Reads count (1..TS_RAW_REGS_MAX) registers from addr, of turnstile i's
     * register type, as they come off the wire, bounded by the device's
     * timeouts and retries. NULL where there are no registers (gpio, sim). */
    int (*read_regs)(struct ts_source *src, size_t i, int addr, int count, uint16_t *regs);
    /* Closes the link; open may be called again later. Safe when not open. */
    void (*close)(struct ts_source *src);
    /* Frees src->data. NULL-safe on a partly created source. */
    void (*destroy)(struct ts_source *src);
};

/* A device at run time. The config pointers are lent by the caller of
 * ts_source_new and must outlive the source. */
struct ts_source {
    const struct ts_hal_backend *backend;
    const struct ts_device_cfg *cfg;
    const struct ts_turnstile_cfg *const *turnstiles; /* the device's turnstiles */
    size_t n_turnstiles;
    int64_t last_rtt_us;      /* round-trip time of the last good read; set by the backend */
    char why[192];            /* the last fault in words (ts_source_why); set by the backend */
    void *data;               /* backend-owned */
};

extern const struct ts_hal_backend ts_backend_modbus_tcp;
extern const struct ts_hal_backend ts_backend_modbus_rtu;
extern const struct ts_hal_backend ts_backend_gpio;
extern const struct ts_hal_backend ts_backend_sim;
extern const struct ts_hal_backend ts_backend_http;

#endif
