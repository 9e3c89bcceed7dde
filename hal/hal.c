/* SPDX-License-Identifier: Apache-2.0 */
#include "hal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static const struct {
    const char *name;
    const struct ts_hal_backend *backend;
} kinds[] = {
    [TS_HAL_MODBUS_TCP] = {"modbus-tcp", &ts_backend_modbus_tcp},
    [TS_HAL_MODBUS_RTU] = {"modbus-rtu", &ts_backend_modbus_rtu},
    [TS_HAL_GPIO] = {"gpio", &ts_backend_gpio},
    [TS_HAL_SIM] = {"sim", &ts_backend_sim},
};

const struct ts_hal_backend *ts_hal_backend_for(enum ts_hal_kind kind)
{
    return (unsigned)kind < sizeof kinds / sizeof kinds[0] ? kinds[kind].backend : NULL;
}

const char *ts_hal_kind_name(enum ts_hal_kind kind)
{
    return (unsigned)kind < sizeof kinds / sizeof kinds[0] ? kinds[kind].name : "?";
}

int ts_hal_kind_parse(const char *name, enum ts_hal_kind *out)
{
    for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(kinds[i].name, name) == 0) {
            *out = (enum ts_hal_kind)i;
            return TS_OK;
        }
    }
    return TS_EINVAL;
}

void ts_hal_bus_key(const struct ts_device_cfg *cfg, char *buf, size_t size)
{
    if (cfg->kind == TS_HAL_MODBUS_RTU)
        snprintf(buf, size, "rtu:%s", cfg->serial_port);
    else
        snprintf(buf, size, "%s:%s", ts_hal_kind_name(cfg->kind), cfg->name);
}

int ts_source_new(const struct ts_device_cfg *cfg, const struct ts_turnstile_cfg *const *turnstiles,
                  size_t n, struct ts_source **out)
{
    struct ts_source *src = calloc(1, sizeof *src);
    int rc;

    *out = NULL;
    if (!src)
        return TS_ENOMEM;
    src->backend = ts_hal_backend_for(cfg->kind);
    src->cfg = cfg;
    src->turnstiles = turnstiles;
    src->n_turnstiles = n;
    src->stats.link = TS_LINK_DOWN;
    if (!src->backend) {
        free(src);
        return TS_EINVAL;
    }
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
    if (src->backend->close)
        src->backend->close(src);
    if (src->backend->destroy)
        src->backend->destroy(src);
    free(src);
}

int ts_source_read_regs(struct ts_source *src, size_t i, int addr, int count, uint16_t *regs)
{
    if (!src->backend->read_regs || i >= src->n_turnstiles || count < 1 || count > TS_RAW_REGS_MAX ||
        addr < 0 || addr + count > 65536)
        return TS_EINVAL;
    return src->backend->read_regs(src, i, addr, count, regs);
}
