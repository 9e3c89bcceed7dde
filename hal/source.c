/* SPDX-License-Identifier: Apache-2.0 */
/* source.c - ts_source_*: the one way into the backends (hal.h). */
#include <stdlib.h>

#include "err.h"
#include "hal_private.h"

static const struct ts_hal_backend *const backends[] = {
    [TS_HAL_MODBUS_TCP] = &ts_backend_modbus_tcp,
    [TS_HAL_MODBUS_RTU] = &ts_backend_modbus_rtu,
    [TS_HAL_GPIO] = &ts_backend_gpio,
    [TS_HAL_SIM] = &ts_backend_sim,
    [TS_HAL_HTTP] = &ts_backend_http,
};

int ts_source_new(const struct ts_device_cfg *cfg, const struct ts_turnstile_cfg *const *turnstiles,
                  size_t n, struct ts_source **out)
{
    struct ts_source *src;
    int rc;

    *out = NULL;
    if ((unsigned)cfg->kind >= sizeof backends / sizeof backends[0] || !backends[cfg->kind])
        return TS_EINVAL;
    if (!(src = calloc(1, sizeof *src)))
        return TS_ENOMEM;
    src->backend = backends[cfg->kind];
    src->cfg = cfg;
    src->turnstiles = turnstiles;
    src->n_turnstiles = n;
    if (src->backend->create && (rc = src->backend->create(src)) != TS_OK) {
        ts_source_free(src);
        return rc;
    }
    *out = src;
    return TS_OK;
}

void ts_source_free(struct ts_source *src)
{
    if (!src)
        return;
    ts_source_close(src);
    if (src->backend->destroy)
        src->backend->destroy(src);
    free(src);
}

int ts_source_open(struct ts_source *src)
{
    src->why[0] = 0;
    return src->backend->open ? src->backend->open(src) : TS_OK;
}

int ts_source_read(struct ts_source *src, size_t i, uint64_t *entries, uint64_t *exits)
{
    if (i >= src->n_turnstiles)
        return TS_EINVAL;
    src->why[0] = 0;
    return src->backend->read(src, i, entries, exits);
}

void ts_source_close(struct ts_source *src)
{
    if (src->backend->close)
        src->backend->close(src);
}

const char *ts_source_why(const struct ts_source *src)
{
    return src->why;
}

int64_t ts_source_rtt_us(const struct ts_source *src)
{
    return src->last_rtt_us;
}

int ts_source_read_regs(struct ts_source *src, size_t i, int addr, int count, uint16_t *regs)
{
    if (!src->backend->read_regs || i >= src->n_turnstiles || count < 1 || count > TS_RAW_REGS_MAX ||
        addr < 0 || addr + count > 65536)
        return TS_EINVAL;
    return src->backend->read_regs(src, i, addr, count, regs);
}
